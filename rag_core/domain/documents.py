"""Documents and their versions: the manifest of a version, a source's access metadata, and
which keys from outside may name a source. `adapters.catalog` keeps them in the object store."""

from datetime import datetime
from pathlib import PurePosixPath

from pydantic import BaseModel, Field, field_validator

from rag_core.domain.ids import partition_key
from rag_core.domain.layout import (
    METADATA_SUFFIX,
    SOURCES_PREFIX,
    WAREHOUSE_PREFIX,
    is_warehouse_source,
)


def normalize_subject(subject: str) -> str:
    """Data subjects (an email, a customer id) are kept trimmed and lower-cased, and erasure
    compares them so, as the warehouse's `lower(trim(...))` does: a request for
    `Alice@Example.com` must find `alice@example.com`."""
    return subject.strip().lower()


class SourceMetadata(BaseModel):
    """Who may read a source and whom it is about, from its `<key>.meta.json` sidecar."""

    acl: list[str] = Field(default_factory=list, description="Groups allowed to read it.")
    subjects: list[str] = Field(default_factory=list, description="People it is about.")

    @field_validator("subjects")
    @classmethod
    def _normalized(cls, subjects: list[str]) -> list[str]:
        return [normalize_subject(s) for s in subjects if s.strip()]


class DocumentVersion(BaseModel):
    """Manifest of one document version: where it came from, when it was first seen, and
    the source's access (the same in every version of a document: it belongs to the source,
    not to one state of its content)."""

    doc_id: str
    version: str
    source_key: str
    source_uri: str
    size: int
    discovered_at: datetime
    acl: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)

    @property
    def partition_key(self) -> str:
        return partition_key(self.doc_id, self.version)

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.source_key).name

    @property
    def metadata(self) -> SourceMetadata:
        return SourceMetadata(acl=self.acl, subjects=self.subjects)


# Most filesystems refuse file names over 255 bytes (ENAMETOOLONG), and a source's last
# segment gets the sidecar's suffix and the local store's `.partial` while it is written;
# S3 keys stop at 1,024 bytes.
MAX_SEGMENT_BYTES = 255 - len(f"{METADATA_SUFFIX}.partial")
MAX_KEY_BYTES = 1024


class InvalidSourceKey(ValueError):
    """A key from outside (an event, an upload, a listing) that must not name a source."""


def check_source_key(key: str, *, allow_warehouse: bool = True) -> str:
    """`key` if it names a source: `documents/<relative path>` of non-empty segments other
    than `.` and `..`, printable, without backslashes, each segment at most 255 bytes, not an
    access sidecar (sidecars are metadata, never documents) and, unless `allow_warehouse`,
    not a warehouse row's document (those belong to the warehouse producer). Every place
    that turns a key from outside into a path or object name asks this one function, so a
    key like `documents/../../outside` can never reach outside the store's `documents/`."""
    segments = key.split("/")
    if segments[0] != SOURCES_PREFIX or len(segments) < 2:
        raise InvalidSourceKey(f"not under {SOURCES_PREFIX}/")
    if any(part in ("", ".", "..") for part in segments[1:]):
        raise InvalidSourceKey("a path segment is empty, . or ..")
    if not key.isprintable() or "\\" in key:
        raise InvalidSourceKey("holds a control character or a backslash")
    if any(len(part.encode()) > MAX_SEGMENT_BYTES for part in segments):
        raise InvalidSourceKey(f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidSourceKey(f"longer than {MAX_KEY_BYTES} bytes")
    if key.endswith(METADATA_SUFFIX):
        raise InvalidSourceKey(f"an access sidecar ({METADATA_SUFFIX}), not a document")
    if not allow_warehouse and is_warehouse_source(key):
        raise InvalidSourceKey(f"under {WAREHOUSE_PREFIX}/, which only the warehouse writes")
    return key


def is_source(key: str) -> bool:
    """Whether `key` names a source (see `check_source_key`)."""
    try:
        check_source_key(key)
    except InvalidSourceKey:
        return False
    return True
