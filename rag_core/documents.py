"""Document versions: how sources in the object store become partitions, and the artifacts
each pipeline stage leaves behind under keys named by ids only."""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field, ValidationError, field_validator

from rag_core.ids import doc_id_for, partition_key, version_for
from rag_core.objectstore import SOURCES_PREFIX, ObjectStore

ARTIFACT_PREFIXES = (
    "manifests", "raw", "parsed", "failures", "chunks", "embeddings", "announced", "freshness",
)  # fmt: skip


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


METADATA_SUFFIX = ".meta.json"
WAREHOUSE_PREFIX = f"{SOURCES_PREFIX}/warehouse"


TOMBSTONES_PREFIX = "tombstones"


def tombstone_key(content_hash: str) -> str:
    """Marks content erased on request (`version_for` of its bytes): a source holding these
    exact bytes again (a replayed event, a re-upload) is not indexed until a new request
    lifts the tombstone."""
    return f"{TOMBSTONES_PREFIX}/{content_hash}"


def metadata_key(source_key: str) -> str:
    return source_key + METADATA_SUFFIX


# Most filesystems refuse file names over 255 bytes (ENAMETOOLONG), and a source's last
# segment gets the sidecar's suffix and the local store's `.partial` while it is written;
# S3 keys stop at 1,024 bytes.
MAX_SEGMENT_BYTES = 255 - len(".meta.json.partial")
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
    if not allow_warehouse and key.startswith(f"{WAREHOUSE_PREFIX}/"):
        raise InvalidSourceKey(f"under {WAREHOUSE_PREFIX}/, which only the warehouse writes")
    return key


def is_source(key: str) -> bool:
    """Whether `key` names a source (see `check_source_key`)."""
    try:
        check_source_key(key)
    except InvalidSourceKey:
        return False
    return True


def put_source(
    store: ObjectStore, key: str, content: bytes, metadata: SourceMetadata | None = None
) -> None:
    """Write a source and its sidecar (removing a stale sidecar when there is no metadata)."""
    if metadata is None:
        store.delete(metadata_key(key))
    else:
        store.put(metadata_key(key), metadata.model_dump_json().encode())
    store.put(key, content)


def delete_source(store: ObjectStore, key: str) -> None:
    store.delete(key)
    store.delete(metadata_key(key))


def read_source(store: ObjectStore, key: str) -> tuple[bytes, SourceMetadata] | None:
    """A source's bytes and metadata, or None when it is gone."""
    try:
        content = store.get(key)
    except FileNotFoundError:
        return None
    sidecar = metadata_key(key)
    metadata = (
        SourceMetadata.model_validate_json(store.get(sidecar))
        if store.exists(sidecar)
        else SourceMetadata()
    )
    return content, metadata


def artifact_key(stage: str, doc_id: str, version: str) -> str:
    suffix = {"raw": "", "embeddings": ".npy"}
    return f"{stage}/{doc_id}/{version}{suffix.get(stage, '.json')}"


def read_manifest(store: ObjectStore, doc_id: str, version: str) -> DocumentVersion:
    return DocumentVersion.model_validate_json(
        store.get(artifact_key("manifests", doc_id, version))
    )


def plan_sources(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, source key) for files and folders (recursively) to add to the store; access
    sidecars (`*.meta.json`) are not sources, `sidecar_of` finds them.

    A file keeps its path relative to the folder it was given from, so `guide/install.html`
    stays distinguishable from `api/install.html`. A file whose key `check_source_key`
    refuses raises `InvalidSourceKey` before anything is copied.
    """
    planned = []
    for path in paths:
        path = path.expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        base = path if path.is_dir() else path.parent
        planned += [
            (file, _checked_key(file, f"{SOURCES_PREFIX}/{file.relative_to(base).as_posix()}"))
            for file in files
            if not file.name.endswith(METADATA_SUFFIX)
        ]
    return planned


def _checked_key(file: Path, key: str) -> str:
    try:
        return check_source_key(key)
    except InvalidSourceKey as refused:
        raise InvalidSourceKey(f"{file}: {refused}") from refused


def sidecar_of(file: Path) -> SourceMetadata | None:
    """The access metadata in the `<file>.meta.json` beside a file, if there is one; a
    ValueError naming it when it is not valid."""
    sidecar = file.with_name(file.name + METADATA_SUFFIX)
    if not sidecar.is_file():
        return None
    try:
        return SourceMetadata.model_validate_json(sidecar.read_bytes())
    except ValidationError as invalid:
        reason = invalid.errors()[0]["msg"]
        raise ValueError(f"{sidecar}: not a valid access sidecar ({reason})") from None


def add_sources(
    store: ObjectStore,
    paths: Iterable[Path],
    progress: Callable[[list[tuple[Path, str]]], Iterable[tuple[Path, str]]] = iter,
) -> list[str]:
    """Copy files into the store's sources (through `progress`, e.g. a progress bar), each
    with the sidecar found beside it as its own, so its acl applies (a source without one
    keeps whatever sidecar the store has: copying must never make a document public);
    returns the keys of the sources written."""
    planned = plan_sources(paths)
    access = {file: sidecar_of(file) for file, _ in planned}  # an invalid one stops all
    for file, key in progress(planned):
        metadata = access[file]
        if metadata is None:
            store.put(key, file.read_bytes())
        else:
            put_source(store, key, file.read_bytes(), metadata)
    return [key for _, key in planned]


def discover(store: ObjectStore, keys: Iterable[str] | None = None) -> list[DocumentVersion]:
    """The current version of every source (or of those of `keys` that still exist), writing
    manifests for new ones; content erased on request (tombstoned) is skipped.

    A version is its content alone, so a source whose acl or subjects changed keeps its
    version: its manifests take the new metadata, and the index rows follow
    (`pipeline.update_access`) without parsing or embedding anything again. Keys that do
    not name a source (`is_source`: sidecars among them) are skipped, listed or given."""
    if keys is None:
        keys = [obj.key for obj in store.list(SOURCES_PREFIX)]
    versions = []
    for key in filter(is_source, keys):
        source = read_source(store, key)
        if source is not None and not store.exists(tombstone_key(version_for(source[0]))):
            versions.append(_current_manifest(store, key, *source))
    return versions


def _current_manifest(
    store: ObjectStore, key: str, content: bytes, metadata: SourceMetadata
) -> DocumentVersion:
    source_uri = store.uri_for(key)
    doc_id, version = doc_id_for(source_uri), version_for(content)
    if store.exists(artifact_key("manifests", doc_id, version)):
        manifest = read_manifest(store, doc_id, version)
        if manifest.metadata == metadata:
            return manifest
        return _update_metadata(store, manifest, metadata)
    manifest = DocumentVersion(
        doc_id=doc_id,
        version=version,
        source_key=key,
        source_uri=source_uri,
        size=len(content),
        discovered_at=datetime.now(UTC),
        acl=metadata.acl,
        subjects=metadata.subjects,
    )
    _write_manifest(store, manifest)
    return manifest


def _update_metadata(
    store: ObjectStore, current: DocumentVersion, metadata: SourceMetadata
) -> DocumentVersion:
    """Give every known version of a document the source's new acl and subjects (so a rerun
    of an older partition, or erasure by subject, sees them too), the current one last: a
    crash midway leaves it stale, and the next discovery finishes the job."""
    for version in known_versions(store, current.doc_id):
        if version != current.version:
            _with_metadata(store, read_manifest(store, current.doc_id, version), metadata)
    return _with_metadata(store, current, metadata)


def _with_metadata(
    store: ObjectStore, manifest: DocumentVersion, metadata: SourceMetadata
) -> DocumentVersion:
    if manifest.metadata == metadata:
        return manifest
    updated = manifest.model_copy(update=metadata.model_dump())
    _write_manifest(store, updated)
    return updated


def _write_manifest(store: ObjectStore, manifest: DocumentVersion) -> None:
    store.put(
        artifact_key("manifests", manifest.doc_id, manifest.version),
        manifest.model_dump_json().encode(),
    )


def capture_raw(store: ObjectStore, manifest: DocumentVersion) -> bool:
    """Copy the version's bytes to `raw/`; False when the source no longer holds that version."""
    raw_key = artifact_key("raw", manifest.doc_id, manifest.version)
    if store.exists(raw_key):
        return True
    source = read_source(store, manifest.source_key)
    if source is None or version_for(source[0]) != manifest.version:
        return False
    store.put(raw_key, source[0])
    return True


def remove_artifacts(store: ObjectStore, doc_id: str, version: str) -> None:
    """Delete everything the pipeline derived from one version (used when it is retired)."""
    for stage in reversed(ARTIFACT_PREFIXES):
        store.delete(artifact_key(stage, doc_id, version))


def manifest_source_keys(store: ObjectStore) -> set[str]:
    """The sources of every version with a manifest: what the pipeline knows, whether or
    not the source is still there."""
    return {
        DocumentVersion.model_validate_json(store.get(obj.key)).source_key
        for obj in store.list("manifests")
    }


def known_versions(store: ObjectStore, doc_id: str) -> list[str]:
    """Versions of a document that still have a manifest."""
    return [
        PurePosixPath(obj.key).name.removesuffix(".json")
        for obj in store.list(f"manifests/{doc_id}")
    ]
