"""The chunk store port: what the flows, the assets and the benchmarks ask of the index.

Callers say which chunks they mean with typed values (`ChunkFilter` for searches,
`DocumentSelector` for documents); each backend turns them into its own query language, so
no query string is written outside the backend's module. `rag_core.adapters.index` is the
LanceDB backend; another one (Qdrant, pgvector) is one module implementing `ChunkStore`,
listed in `rag_core.services.CHUNK_STORES` and chosen by `RAG_INDEX_BACKEND`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from rag_core.domain.schemas import SearchFilters

# Columns every caller may read back from a search; the vector is returned beside them.
RESULT_COLUMNS = [
    "chunk_id", "doc_id", "version", "position", "text", "source_uri", "title", "section",
    "page", "acl", "subjects", "ingested_at",
]  # fmt: skip

Groups = frozenset[str] | None  # the caller's groups; None reads everything (dev mode only)
LiveVersions = dict[tuple[str, str], int]
Access = tuple[tuple[str, ...], tuple[str, ...]]  # a row's (acl, subjects)


def chunk_schema(dimension: int) -> pa.Schema:
    """The rows `ChunkStore.upsert` takes: one chunk of one document version each."""
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("version", pa.string(), nullable=False),
            pa.field("position", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            # The text under its page and section header: what full-text search matches.
            pa.field("indexed_text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
            pa.field("source_uri", pa.string()),
            pa.field("title", pa.string()),
            pa.field("section", pa.string()),
            pa.field("page", pa.int32()),
            pa.field("acl", pa.list_(pa.string())),
            pa.field("subjects", pa.list_(pa.string())),
            pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
        ]
    )


@dataclass(frozen=True)
class DocumentSelector:
    """Documents by id, by source URI prefix and by data subject (normalized); every
    criterion given must hold, none given selects every document. An empty `doc_ids`
    selects nothing."""

    doc_ids: tuple[str, ...] | None = None
    source_prefix: str | None = None
    subject: str | None = None


EVERY_DOCUMENT = DocumentSelector()


@dataclass(frozen=True)
class ChunkFilter:
    """The chunks a search may rank: those of the selected documents, ingested in the time
    window, that the caller's groups may read (public ones, with an empty acl, and those
    sharing a group). Backends apply it before ranking, so a chunk the caller may not read
    is never a candidate, let alone a hit, a rerank input or a citation."""

    documents: DocumentSelector = EVERY_DOCUMENT
    ingested_after: datetime | None = None  # inclusive
    ingested_before: datetime | None = None  # exclusive
    groups: Groups = None

    @classmethod
    def of(cls, filters: SearchFilters | None, groups: Groups = None) -> "ChunkFilter":
        """A search request's filters, within what the caller's groups may read."""
        filters = filters or SearchFilters()
        documents = DocumentSelector(
            doc_ids=None if filters.doc_ids is None else tuple(filters.doc_ids),
            source_prefix=filters.source_prefix or None,
        )
        return cls(
            documents=documents,
            ingested_after=filters.ingested_after,
            ingested_before=filters.ingested_before,
            groups=groups,
        )


class TaggedVersionsError(RuntimeError):
    """Tagged table versions would keep erased rows; untagging must be asked for."""

    def __init__(self, tags: list[str]):
        super().__init__(f"tagged table versions block erasure: {', '.join(tags)}")
        self.tags = tags


@dataclass(frozen=True)
class IndexStats:
    documents: int
    versions: int
    chunks: int
    table_version: int

    @classmethod
    def of(cls, live: LiveVersions, table_version: int) -> "IndexStats":
        return cls(
            documents=len({doc_id for doc_id, _ in live}),
            versions=len(live),
            chunks=sum(live.values()),
            table_version=table_version,
        )


class ChunkStore(Protocol):
    """Chunks with their vectors, text and access, searchable by vector and by keyword.

    Writes are idempotent: chunk ids are deterministic and only new ids are inserted, so a
    replayed document version changes nothing. A write that changes rows makes a new table
    version; older versions stay on storage until cleaned up, at once by `purge_history`."""

    def table_version(self) -> int:
        """Version of the table (0 before the first write); any write changes it."""
        ...

    def row_count(self) -> int:
        """Chunks in the current table, cheaply enough for every metrics scrape."""
        ...

    def recent_version(self, max_age: float) -> int:
        """`table_version()` as read at most `max_age` seconds ago."""
        ...

    def upsert(self, rows: pa.Table) -> int:
        """Insert rows (`chunk_schema`) whose chunk_id is new; returns how many were."""
        ...

    def optimize(self) -> None:
        """Compact storage and bring every index up to date with the rows."""
        ...

    def retire_versions(self, doc_ids: Iterable[str], keep: int) -> list[tuple[str, str]]:
        """Delete all but the `keep` most recent versions of each document; returns the
        (doc_id, version) pairs removed."""
        ...

    def versions_of(self, doc_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(doc_id, version) pairs in the table for these documents."""
        ...

    def vectors_of(self, chunk_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vector of each of these chunks the table holds."""
        ...

    def access_of(self, doc_ids: Iterable[str]) -> dict[str, set[Access]]:
        """The distinct (acl, subjects) among each document's rows."""
        ...

    def set_access(self, doc_id: str, acl: Iterable[str], subjects: Iterable[str]) -> None:
        """Give every row of a document this acl and these subjects in one commit."""
        ...

    def delete_documents(self, doc_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Delete every row of these documents; returns the (doc_id, version) pairs removed."""
        ...

    def chunk_ids_of(self, doc_ids: Iterable[str]) -> list[str]:
        """Chunk ids these documents have in the current table."""
        ...

    def documents_matching(self, selector: DocumentSelector) -> set[str]:
        """Ids of the selected documents that have a row."""
        ...

    def rows(
        self, selector: DocumentSelector = EVERY_DOCUMENT, columns: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of the selected documents, with these columns (default: all, vector too)."""
        ...

    def first_chunk_texts(self, doc_ids: Sequence[str], limit: int) -> list[str]:
        """Text of the first chunk of these documents' versions, at most `limit` of them."""
        ...

    def blank_chunks(self) -> int:
        """Rows whose text is empty or whitespace."""
        ...

    def vector_dimension(self) -> int | None:
        """Length of the stored vectors, or None before anything was indexed."""
        ...

    def versions_holding(self, doc_ids: Iterable[str]) -> list[int]:
        """Table versions still on storage in which any of these documents has a row."""
        ...

    def chunk_ids_in_history(self, doc_ids: Iterable[str]) -> set[str]:
        """Chunk ids these documents have in any table version still on storage."""
        ...

    def tags(self) -> list[str]:
        """Names of tagged table versions (tags keep a version from being purged)."""
        ...

    def purge_history(self, *, untag: bool) -> list[str]:
        """Erase deleted rows for good, older table versions included; tagged versions raise
        `TaggedVersionsError` unless `untag`, which removes their tags (returned)."""
        ...

    def live_versions(self) -> LiveVersions:
        """Chunk count of every (doc_id, version) in the table."""
        ...

    def stats(self, live: LiveVersions | None = None) -> IndexStats:
        """Counts of the current table; pass `live_versions()` if already at hand."""
        ...

    def vector_search(
        self, vector: np.ndarray, limit: int, chunk_filter: ChunkFilter | None = None
    ) -> list[dict[str, Any]]:
        """Nearest chunks by cosine distance (`_distance`), the filter applied before
        ranking; each row has `RESULT_COLUMNS` and its vector."""
        ...

    def keyword_search(
        self, text: str, limit: int, chunk_filter: ChunkFilter | None = None
    ) -> list[dict[str, Any]]:
        """Best BM25 matches (`_score`), the filter applied first; rows as `vector_search`."""
        ...
