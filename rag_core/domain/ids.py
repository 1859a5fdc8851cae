"""Deterministic identifiers.

Partition keys and run tags carry only these opaque hashes, never file names or content,
so erasing a document later never has to rewrite the orchestrator's history.
"""

import hashlib

PARTITION_SEPARATOR = "@"


def digest(*parts: str | bytes, length: int) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\x00")
    return hasher.hexdigest()[:length]


def doc_id_for(source_uri: str) -> str:
    """Stable id of a document: the hash of where it lives."""
    return digest(source_uri, length=32)


# The revision of what the pipeline makes of a document's bytes (parsing, chunking, the text
# indexed per chunk). Bumping it gives every document a new version, which the normal path
# indexes (new rows before the old version retires) and `ragctl backfill` rebuilds.
INDEX_REVISION = "2"


def content_hash(content: bytes) -> str:
    """The hash of a document's bytes alone, whatever the pipeline's revision: erasure
    tombstones content by it, so erased content stays erased across revisions."""
    return digest(content, length=16)


def version_for(content: bytes) -> str:
    """Id of one version of a document: its bytes as this revision of the pipeline reads them."""
    return digest(content, INDEX_REVISION, length=16)


def chunk_id_for(doc_id: str, version: str, position: int, text: str) -> str:
    """Id of a chunk, the same on every rebuild of the same document version."""
    return digest(doc_id, version, str(position), text, length=32)


def partition_key(doc_id: str, version: str) -> str:
    return f"{doc_id}{PARTITION_SEPARATOR}{version}"


def split_partition_key(key: str) -> tuple[str, str]:
    doc_id, separator, version = key.partition(PARTITION_SEPARATOR)
    if not separator or not doc_id or not version:
        raise ValueError(f"not a document-version partition key: {key!r}")
    return doc_id, version
