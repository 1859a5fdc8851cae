"""The indexing stages over document versions, each reading the previous stage's artifact
from the object store and writing its own. Dagster assets are thin wrappers over these;
every stage is idempotent, so a replay or a backfill reproduces the same artifacts."""

import gc
import io
import json
import multiprocessing
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from rag_core.adapters.catalog import capture_raw, known_versions, read_manifest, remove_artifacts
from rag_core.adapters.embedding import Embedder
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain.chunk_store import ChunkStore, chunk_schema
from rag_core.domain.chunking import Chunk, chunk_document, indexed_text, reads_as_navigation
from rag_core.domain.documents import DocumentVersion
from rag_core.domain.layout import Artifact, artifact_key
from rag_core.domain.parsing import ParsedDocument, is_real_title, parse_document, warm_up_parser
from rag_core.settings import Settings


class ChunkSet(BaseModel):
    title: str
    chunks: list[Chunk]


MISSING_RAW = "raw bytes missing: the source changed before capture"
# Forking pays off only when there is enough to parse; below this, parse in-process.
MIN_DOCUMENTS_PER_FORK = 4


def _parse_raw(item: tuple[bytes | None, str]) -> ParsedDocument:
    content, file_name = item
    if content is None:
        return ParsedDocument(title=file_name, error=MISSING_RAW)
    return parse_document(content, file_name)


def _parse_all(items: list[tuple[bytes | None, str]], workers: int) -> list[ParsedDocument]:
    """Parse in `workers` forked processes when it pays. Parsing is single-threaded Python
    (pdfminer, spaCy), so on its own it leaves all but one core idle. Workers are forked after
    the parser is loaded here, so they start warm instead of importing it again."""
    if workers < 2 or len(items) < MIN_DOCUMENTS_PER_FORK:
        return [_parse_raw(item) for item in items]
    warm_up_parser({file_name for _, file_name in items})
    # Longest first, so one big PDF does not start last and leave the other workers idle.
    order = sorted(range(len(items)), key=lambda i: -len(items[i][0] or b""))
    gc.freeze()  # children's collections would otherwise copy the parent's heap page by page
    try:
        with warnings.catch_warnings():
            # LanceDB and Lance warn that a forked child may deadlock inside them; these
            # children only parse bytes and never touch either.
            warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
            warnings.filterwarnings("ignore", message="lance is not fork-safe")
            fork = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=fork) as pool:
                parsed = list(pool.map(_parse_raw, [items[i] for i in order]))
    finally:
        gc.unfreeze()
    by_position = dict(zip(order, parsed, strict=True))
    return [by_position[i] for i in range(len(items))]


def parse_versions(
    store: ObjectStore, manifests: Sequence[DocumentVersion], workers: int = 1
) -> list[ParsedDocument]:
    """Parse each version's raw bytes and record the result (and any failure) per version."""
    items = []
    for manifest in manifests:
        raw_key = artifact_key(Artifact.RAW, manifest.doc_id, manifest.version)
        items.append((store.get(raw_key) if store.exists(raw_key) else None, manifest.file_name))
    parsed_documents = _parse_all(items, workers)
    for manifest, parsed in zip(manifests, parsed_documents, strict=True):
        store.put(
            artifact_key(Artifact.PARSED, manifest.doc_id, manifest.version),
            parsed.model_dump_json().encode(),
        )
        if not parsed.ok:
            failure = {
                "doc_id": manifest.doc_id,
                "version": manifest.version,
                "reason": parsed.error,
            }
            store.put(
                artifact_key(Artifact.FAILURE, manifest.doc_id, manifest.version),
                json.dumps(failure).encode(),
            )
    return parsed_documents


class ParseFailure(BaseModel):
    """A version that could not be parsed. Its record in `failures/` names no file; the source
    is looked up in the version's manifest when the failure is read, so nothing that outlives
    an erasure (Dagster's history) learns it."""

    doc_id: str
    version: str
    reason: str
    source_key: str | None = Field(description="None once the version's manifest is gone.")


def parse_failures(
    store: ObjectStore, versions: Iterable[tuple[str, str]] | None = None
) -> list[ParseFailure]:
    """Versions that could not be parsed (all, or those of the given (doc_id, version) pairs
    that failed), with the reason and their source."""
    if versions is None:
        keys = [obj.key for obj in store.list(Artifact.FAILURE)]
    else:
        keys = [artifact_key(Artifact.FAILURE, *pair) for pair in versions]
    return [_with_source(store, json.loads(store.get(key))) for key in keys if store.exists(key)]


def _with_source(store: ObjectStore, record: dict[str, str]) -> ParseFailure:
    try:
        manifest = read_manifest(store, record["doc_id"], record["version"])
    except FileNotFoundError:
        return ParseFailure(**record, source_key=None)
    return ParseFailure(**record, source_key=manifest.source_key)


def chunk_version(
    store: ObjectStore, manifest: DocumentVersion, *, size: int, overlap: int
) -> ChunkSet:
    parsed = ParsedDocument.model_validate_json(
        store.get(artifact_key(Artifact.PARSED, manifest.doc_id, manifest.version))
    )
    chunks = chunk_document(parsed, manifest.doc_id, manifest.version, size=size, overlap=overlap)
    chunk_set = ChunkSet(title=parsed.title, chunks=chunks)
    store.put(
        artifact_key(Artifact.CHUNKS, manifest.doc_id, manifest.version),
        chunk_set.model_dump_json().encode(),
    )
    return chunk_set


def reading_problems(
    manifests: Sequence[DocumentVersion], chunk_sets: Sequence[ChunkSet]
) -> dict[str, list[str]]:
    """Partition keys of the versions that do not read as a person would read them, by
    check: titled by navigation or their file name, or with chunks of navigation alone."""
    untitled, navigation = [], []
    for manifest, chunk_set in zip(manifests, chunk_sets, strict=True):
        if not chunk_set.chunks:
            continue  # unparseable or empty: recorded as such by the parse stage
        if not is_real_title(chunk_set.title) or chunk_set.title == manifest.file_name:
            untitled.append(manifest.partition_key)
        if any(reads_as_navigation(chunk.text) for chunk in chunk_set.chunks):
            navigation.append(manifest.partition_key)
    return {"titles_name_their_documents": untitled, "no_navigation_chunks": navigation}


def read_chunks(store: ObjectStore, manifest: DocumentVersion) -> ChunkSet:
    return ChunkSet.model_validate_json(
        store.get(artifact_key(Artifact.CHUNKS, manifest.doc_id, manifest.version))
    )


def read_vectors(store: ObjectStore, manifest: DocumentVersion) -> np.ndarray:
    data = store.get(artifact_key(Artifact.EMBEDDINGS, manifest.doc_id, manifest.version))
    vectors: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return vectors


def embed_versions(
    store: ObjectStore,
    embedder: Embedder,
    index: ChunkStore,
    manifests: Sequence[DocumentVersion],
) -> int:
    """Embed the chunks of many versions in one batch (the model is the bottleneck, and it is
    fastest fed full batches); returns the number of chunks embedded.

    Versions already in the index keep their stored vectors: a chunk id fixes the text, so
    rerunning an indexed version (after an access change, say) calls no model."""
    chunk_sets = [read_chunks(store, manifest) for manifest in manifests]
    live = index.versions_of(m.doc_id for m in manifests)
    stored = index.vectors_of(
        chunk.chunk_id
        for manifest, chunk_set in zip(manifests, chunk_sets, strict=True)
        if (manifest.doc_id, manifest.version) in live
        for chunk in chunk_set.chunks
    )
    titled = [(chunk_set.title, chunk) for chunk_set in chunk_sets for chunk in chunk_set.chunks]
    chunks = [chunk for _, chunk in titled]
    fresh = iter(
        embedder.embed([indexed_text(title, c) for title, c in titled if c.chunk_id not in stored])
    )
    vectors = [stored[c.chunk_id] if c.chunk_id in stored else next(fresh) for c in chunks]
    offset = 0
    for manifest, chunk_set in zip(manifests, chunk_sets, strict=True):
        count = len(chunk_set.chunks)
        _save_vectors(store, manifest, vectors[offset : offset + count], embedder.dimension)
        offset += count
    return len(chunks) - len(stored)


def _save_vectors(
    store: ObjectStore, manifest: DocumentVersion, vectors: list[np.ndarray], dimension: int
) -> None:
    array = np.stack(vectors) if vectors else np.zeros((0, dimension), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    store.put(
        artifact_key(Artifact.EMBEDDINGS, manifest.doc_id, manifest.version), buffer.getvalue()
    )


def version_rows(store: ObjectStore, manifest: DocumentVersion, dimension: int) -> pa.Table:
    """The index rows of one version, from its chunk and embedding artifacts."""
    chunk_set = read_chunks(store, manifest)
    vectors = read_vectors(store, manifest)
    chunks = chunk_set.chunks
    return pa.table(
        {
            "chunk_id": [c.chunk_id for c in chunks],
            "doc_id": [manifest.doc_id] * len(chunks),
            "version": [manifest.version] * len(chunks),
            "position": [c.position for c in chunks],
            "text": [c.text for c in chunks],
            "indexed_text": [indexed_text(chunk_set.title, c) for c in chunks],
            "vector": [v.tolist() for v in vectors],
            "source_uri": [manifest.source_uri] * len(chunks),
            "title": [chunk_set.title] * len(chunks),
            "section": [c.section for c in chunks],
            "page": [c.page for c in chunks],
            "acl": [manifest.acl] * len(chunks),
            "subjects": [manifest.subjects] * len(chunks),
            "ingested_at": [manifest.discovered_at] * len(chunks),
        },
        schema=chunk_schema(dimension),
    )


@dataclass(frozen=True)
class IndexResult:
    inserted: int
    retired: list[tuple[str, str]]
    chunk_counts: dict[tuple[str, str], int]  # chunks of each indexed (doc_id, version)
    access_updated: list[DocumentVersion]  # versions whose document's rows took new access


def index_versions(
    store: ObjectStore,
    index: ChunkStore,
    manifests: Sequence[DocumentVersion],
    *,
    dimension: int,
    keep_versions: int,
    optimize: bool = True,
) -> IndexResult:
    """Upsert the versions' chunks, then retire versions beyond `keep_versions` per document
    (index rows first, then their artifacts), so no document is ever missing from the index;
    then bring the remaining rows' access in line with the manifests'.
    `optimize=False` leaves compaction to the caller (the streaming worker batches it)."""
    rows = [version_rows(store, manifest, dimension) for manifest in manifests]
    inserted = index.upsert(pa.concat_tables(rows)) if rows else 0
    retired = index.retire_versions((m.doc_id for m in manifests), keep_versions)
    for doc_id, version in retired:
        remove_artifacts(store, doc_id, version)
    access_updated = update_access(index, manifests)
    if optimize and (inserted or retired or access_updated):
        index.optimize()  # compact, and fold new rows into the full-text index
    counts = {(m.doc_id, m.version): t.num_rows for m, t in zip(manifests, rows, strict=True)}
    return IndexResult(
        inserted=inserted, retired=retired, chunk_counts=counts, access_updated=access_updated
    )


def access_changes(
    index: ChunkStore, manifests: Sequence[DocumentVersion]
) -> list[DocumentVersion]:
    """Manifests whose document has rows in the index with other access than theirs (the
    source's, see `discover`)."""
    found = index.access_of(m.doc_id for m in manifests)
    changed = []
    for manifest in manifests:
        access = (tuple(manifest.acl), tuple(manifest.subjects))
        if found.get(manifest.doc_id, {access}) != {access}:
            changed.append(manifest)
    return changed


def update_access(index: ChunkStore, manifests: Sequence[DocumentVersion]) -> list[DocumentVersion]:
    """Give the rows of each manifest's document the manifest's acl and subjects where they
    differ; returns those manifests. Text and vectors do not depend on access, so no stage
    runs again and the model is not called."""
    changed = access_changes(index, manifests)
    for manifest in changed:
        index.set_access(manifest.doc_id, manifest.acl, manifest.subjects)
    return changed


def pending_versions(
    store: ObjectStore, index: ChunkStore, manifests: Sequence[DocumentVersion]
) -> list[DocumentVersion]:
    """Versions not yet indexed: not in the table, not recorded as unparseable, and without
    a recorded empty chunk set. Replayed events find nothing pending."""
    live = index.versions_of(m.doc_id for m in manifests)
    pending = []
    for manifest in manifests:
        pair = (manifest.doc_id, manifest.version)
        if pair in live or store.exists(artifact_key(Artifact.FAILURE, *pair)):
            continue
        if (
            store.exists(artifact_key(Artifact.CHUNKS, *pair))
            and not read_chunks(store, manifest).chunks
        ):
            continue
        pending.append(manifest)
    return pending


def build_versions(
    settings: Settings,
    store: ObjectStore,
    index: ChunkStore,
    embedder: Embedder,
    manifests: Sequence[DocumentVersion],
    *,
    optimize: bool = True,
) -> IndexResult:
    """Every stage, raw to index, for versions in one process: the streaming worker's path
    (Dagster runs the same stages one asset at a time). Versions indexed already skip
    straight to the index stage, which updates their access."""
    pending = pending_versions(store, index, manifests)
    for manifest in pending:
        capture_raw(store, manifest)
    parse_versions(store, pending, workers=settings.parse_workers)
    for manifest in pending:
        chunk_version(store, manifest, size=settings.chunk_size, overlap=settings.chunk_overlap)
    embed_versions(store, embedder, index, pending)
    return index_versions(
        store,
        index,
        manifests,
        dimension=embedder.dimension,
        keep_versions=settings.keep_versions,
        optimize=optimize,
    )


def retire_documents(
    store: ObjectStore, index: ChunkStore, doc_ids: Sequence[str]
) -> list[tuple[str, str]]:
    """Remove deleted documents: index rows first, then every version's artifacts; returns
    the (doc_id, version) pairs that had been indexed or discovered."""
    removed = set(index.delete_documents(doc_ids))
    for doc_id in doc_ids:
        for version in known_versions(store, doc_id):
            removed.add((doc_id, version))
    for doc_id, version in removed:
        remove_artifacts(store, doc_id, version)
    return sorted(removed)
