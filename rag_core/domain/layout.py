"""Where everything lives in the object store: the one module that spells a key.

Keys are `/`-separated paths relative to the store root:

    documents/<relative path>          sources, as people and producers put them, each with
                                       an optional `<path>.meta.json` sidecar (acl, subjects)
    documents/warehouse/<table>/...    warehouse rows rendered as documents (only the
                                       warehouse producer writes there)
    manifests/<doc_id>/<version>.json  where a document version came from
    raw/<doc_id>/<version>             the bytes of that version
    parsed/<doc_id>/<version>.json     parsed elements, or the reason parsing failed
    failures/<doc_id>/<version>.json   versions that could not be parsed, and why
    chunks/<doc_id>/<version>.json     chunk records
    embeddings/<doc_id>/<version>.npy  chunk vectors, in chunk order
    announced/<doc_id>/<version>.json  when the version's change event was first seen
    freshness/<doc_id>/<version>.json  when its change event happened and when it was queryable
    tombstones/<content hash>          content erased on request, holding the request's id
    erasure/<request id>.json          erasure requests and what they did
    audit/<sequence:012d>.json         the hash-chained audit trail
    state/                             producers' bookmarks (what they already announced)

Everything derived from a document lives under keys named by opaque ids only, so erasing a
document by id finds all of it, and no key names a person.
"""

import re
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import quote

SOURCES_PREFIX = "documents"
WAREHOUSE_PREFIX = f"{SOURCES_PREFIX}/warehouse"
METADATA_SUFFIX = ".meta.json"
TOMBSTONES_PREFIX = "tombstones"
ERASURE_PREFIX = "erasure"
AUDIT_PREFIX = "audit"
CONSENTS_PREFIX = "consents"
STATE_PREFIX = "state"
SYNC_STATE_KEY = f"{STATE_PREFIX}/object_sync.json"  # the object-store producer's bookmark

_AUDIT_RECORD_KEY = re.compile(rf"{AUDIT_PREFIX}/(\d{{12}})\.json")


class Stage(StrEnum):
    """The document pipeline's stages, upstream first. The orchestrator maps its assets onto
    these, so erasure can walk its lineage without knowing its names."""

    RAW = "raw"
    PARSED = "parsed"
    CHUNKS = "chunks"
    EMBEDDINGS = "embeddings"
    INDEX = "index"


class Artifact(StrEnum):
    """What is kept per document version, each kind under its own prefix; upstream first."""

    MANIFEST = "manifests"
    RAW = "raw"
    PARSED = "parsed"
    FAILURE = "failures"
    CHUNKS = "chunks"
    EMBEDDINGS = "embeddings"
    ANNOUNCED = "announced"
    FRESHNESS = "freshness"


# The artifacts each stage leaves behind: what erasing that stage removes.
STAGE_ARTIFACTS: dict[Stage, tuple[Artifact, ...]] = {
    Stage.RAW: (Artifact.RAW, Artifact.MANIFEST),
    Stage.PARSED: (Artifact.PARSED, Artifact.FAILURE),
    Stage.CHUNKS: (Artifact.CHUNKS,),
    Stage.EMBEDDINGS: (Artifact.EMBEDDINGS,),
    Stage.INDEX: (Artifact.ANNOUNCED, Artifact.FRESHNESS),
}

_SUFFIXES = {Artifact.RAW: "", Artifact.EMBEDDINGS: ".npy"}


def source_key(relative_path: str) -> str:
    """The source at `relative_path` under the sources' folder (unchecked: see
    `documents.check_source_key`)."""
    return f"{SOURCES_PREFIX}/{relative_path}"


def metadata_key(source_key: str) -> str:
    """The access sidecar of a source."""
    return source_key + METADATA_SUFFIX


def is_warehouse_source(key: str) -> bool:
    """Whether a source is a warehouse row's document, which only the warehouse writes."""
    return key.startswith(f"{WAREHOUSE_PREFIX}/")


def warehouse_table_prefix(table: str) -> str:
    return f"{WAREHOUSE_PREFIX}/{table}"


def warehouse_row_key(table: str, row_key: str) -> str:
    """The document a warehouse row is rendered into; the row key is quoted whole, so it is
    always one path segment."""
    return f"{warehouse_table_prefix(table)}/{quote(row_key, safe='')}.md"


def artifact_folder(artifact: Artifact, doc_id: str) -> str:
    """Where every version's artifact of one kind is kept for a document."""
    return f"{artifact}/{doc_id}"


def artifact_key(artifact: Artifact, doc_id: str, version: str) -> str:
    return f"{artifact_folder(artifact, doc_id)}/{version}{_SUFFIXES.get(artifact, '.json')}"


def artifact_version(key: str) -> str:
    """The version an artifact's key names (versions are hashes: the first dot starts the
    suffix)."""
    return PurePosixPath(key).name.partition(".")[0]


def tombstone_key(content_hash: str) -> str:
    """Marks content erased on request (`content_hash` of its bytes): a source holding these
    exact bytes again (a replayed event, a re-upload) is not indexed until a new request
    lifts the tombstone."""
    return f"{TOMBSTONES_PREFIX}/{content_hash}"


def erasure_request_key(request_id: str) -> str:
    return f"{ERASURE_PREFIX}/{request_id}.json"


def consent_key(token_hash: str) -> str:
    """An erasure preview's confirmation, redeemable once, under its token's hash (the token
    itself is known only to the caller it was given to)."""
    return f"{CONSENTS_PREFIX}/{token_hash}.json"


def audit_record_key(sequence: int) -> str:
    """Zero-padded, so key order is sequence order."""
    return f"{AUDIT_PREFIX}/{sequence:012d}.json"


def audit_sequence(key: str) -> int | None:
    """The sequence an audit record's key names, None for any other key."""
    match = _AUDIT_RECORD_KEY.fullmatch(key)
    return int(match.group(1)) if match else None
