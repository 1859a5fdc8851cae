"""The LanceDB `chunks` table, the `ChunkStore` backend: idempotent upserts, version
retirement, vector and full-text search, erasure down to the files.

The only module that writes LanceDB SQL: callers pass typed filters and selectors, turned
into prefilter predicates here. Writes are idempotent by construction: chunk ids are
deterministic and `merge_insert` only inserts ids the table lacks, so replaying a document
version leaves the table (and its version number) untouched. A new version is written
before older ones are deleted.
"""

import functools
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.query import LanceVectorQueryBuilder
from lancedb.table import Table

from rag_core.domain.chunk_store import (
    EVERY_DOCUMENT,
    RESULT_COLUMNS,
    Access,
    ChunkFilter,
    DocumentSelector,
    Groups,
    IndexStats,
    LiveVersions,
    TaggedVersionsError,
    chunk_schema,
)
from rag_core.settings import Settings

TABLE_NAME = "chunks"
TEXT_SEARCH_COLUMN = "indexed_text"  # chunk text under its page and section header
PUBLIC = "(acl IS NULL OR array_length(acl) = 0)"

P = ParamSpec("P")
R = TypeVar("R")


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(_sql_string(v) for v in values)})"


def _sql_string_list(values: Iterable[str]) -> str:
    """A list-of-strings SQL literal, typed so that an empty list is one too."""
    return f"arrow_cast(make_array({', '.join(_sql_string(v) for v in values)}), 'List(Utf8)')"


def _selection(selector: DocumentSelector) -> list[str]:
    """The selector's criteria as SQL clauses, to be joined by AND."""
    clauses = []
    if selector.doc_ids is not None:
        clauses.append(_sql_in("doc_id", selector.doc_ids) if selector.doc_ids else "FALSE")
    if selector.source_prefix is not None:
        clauses.append(f"starts_with(source_uri, {_sql_string(selector.source_prefix)})")
    if selector.subject is not None:
        clauses.append(f"array_has(subjects, {_sql_string(selector.subject)})")
    return clauses


def _access(groups: Groups) -> list[str]:
    """Chunks the caller may read: public ones (empty acl) and those sharing a group."""
    if groups is None:
        return []
    if not groups:
        return [PUBLIC]
    shared = ", ".join(_sql_string(group) for group in sorted(groups))
    return [f"({PUBLIC} OR array_has_any(acl, make_array({shared})))"]


def _prefilter(chunk_filter: ChunkFilter | None) -> str | None:
    """SQL predicate for LanceDB's prefilter (access first), or None when nothing is
    filtered."""
    if chunk_filter is None:
        return None
    clauses = [*_access(chunk_filter.groups), *_selection(chunk_filter.documents)]
    if chunk_filter.ingested_after:
        clauses.append(f"ingested_at >= TIMESTAMP '{chunk_filter.ingested_after.isoformat()}'")
    if chunk_filter.ingested_before:
        clauses.append(f"ingested_at < TIMESTAMP '{chunk_filter.ingested_before.isoformat()}'")
    return " AND ".join(clauses) or None


def _on_table(
    empty: Callable[[], Any],
) -> Callable[
    [Callable[Concatenate["ChunkIndex", Table, P], R]], Callable[Concatenate["ChunkIndex", P], R]
]:
    """Run the method on the chunks table, opened for this call; before anything was
    indexed there is no table, and the method answers `empty()` without running."""

    def decorate(
        method: Callable[Concatenate["ChunkIndex", Table, P], R],
    ) -> Callable[Concatenate["ChunkIndex", P], R]:
        @functools.wraps(method)
        def on_table(index: "ChunkIndex", /, *args: P.args, **kwargs: P.kwargs) -> R:
            table = index._table()
            return empty() if table is None else method(index, table, *args, **kwargs)

        return on_table

    return decorate


@dataclass(frozen=True)
class TableStorage:
    """How the chunks table sits on storage, what erasure's purge rewrites and drops."""

    versions: list[int]  # table versions still on storage, oldest first
    fragments: int
    unindexed_rows: dict[str, int]  # by index name: rows the index has not absorbed yet


class ChunkIndex:
    def __init__(self, settings: Settings):
        storage_options = {}
        if settings.index_uri.startswith("s3://") and settings.s3_endpoint_url:
            storage_options = {
                "aws_endpoint": settings.s3_endpoint_url,
                "aws_region": settings.s3_region,
                "allow_http": str(settings.s3_endpoint_url.startswith("http:")).lower(),
            }
        self._db = lancedb.connect(settings.index_uri, storage_options=storage_options or None)
        self._vector_index_min_rows = settings.vector_index_min_rows
        self._version_read: tuple[float, int] | None = None  # (monotonic time, version)
        self._version_lock = threading.Lock()

    def _table(self) -> Table | None:
        """The chunks table, or None before anything was indexed."""
        try:
            return self._db.open_table(TABLE_NAME)
        except (FileNotFoundError, ValueError):
            return None

    @_on_table(int)
    def table_version(self, table: Table) -> int:
        """Version of the chunks table (0 before the first write); any write changes it."""
        return int(table.version)

    @_on_table(int)
    def row_count(self, table: Table) -> int:
        """Chunks in the current table, from the fragments' metadata: no scan, unlike
        `stats()`, so a metrics scrape costs the same however large the index grows."""
        return int(table.count_rows())

    def recent_version(self, max_age: float) -> int:
        """`table_version()` as read at most `max_age` seconds ago. Opening the table costs
        far more than a cache hit, so a hot path that only needs the version (the response
        cache key) opens it once per `max_age` instead of on every call."""
        with self._version_lock:
            now = time.monotonic()
            if self._version_read is None or now - self._version_read[0] >= max_age:
                self._version_read = (now, self.table_version())
            return self._version_read[1]

    def _table_for_write(self, dimension: int) -> Table:
        table = self._table()
        if table is None:
            table = self._db.create_table(TABLE_NAME, schema=chunk_schema(dimension), exist_ok=True)
        elif TEXT_SEARCH_COLUMN not in table.schema.names:
            # A table written before chunks carried a header: its rows match on their text
            # until the new revision's versions (`ids.INDEX_REVISION`) replace them.
            table.add_columns({TEXT_SEARCH_COLUMN: "text"})
        return table

    def upsert(self, rows: pa.Table) -> int:
        """Insert rows whose chunk_id is new; returns how many were inserted."""
        if rows.num_rows == 0:
            return 0
        dimension = rows.schema.field("vector").type.list_size
        table = self._table_for_write(dimension)
        ids = rows.column("chunk_id").to_pylist()
        present = {r["chunk_id"] for r in self._select_in(table, "chunk_id", ids, ["chunk_id"])}
        new_rows = rows.filter(pa.array([chunk_id not in present for chunk_id in ids]))
        if new_rows.num_rows:
            table.merge_insert("chunk_id").when_not_matched_insert_all().execute(
                new_rows.select(table.schema.names).cast(table.schema)
            )
            self._ensure_text_index(table)
        return new_rows.num_rows

    @staticmethod
    def _ensure_text_index(table: Table) -> None:
        """Keep the full-text index on `indexed_text` (one built on `text` before chunks carried
        a header is replaced); rows added since it was built are still searched, and `optimize`
        folds them in."""
        text_indices = [index for index in table.list_indices() if index.index_type == "FTS"]
        for index in text_indices:
            if index.columns != [TEXT_SEARCH_COLUMN]:
                table.drop_index(index.name)
        if not any(index.columns == [TEXT_SEARCH_COLUMN] for index in text_indices):
            table.create_fts_index(TEXT_SEARCH_COLUMN)

    @_on_table(lambda: None)
    def optimize(self, table: Table) -> None:
        """Compact fragments and bring every index up to date with the rows; past
        `vector_index_min_rows` rows, build the ANN vector index (below it, exact search is
        fast enough and exact)."""
        table.optimize()
        if not self._vector_indexed(table) and table.count_rows() >= self._vector_index_min_rows:
            table.create_index(
                metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ"
            )

    @staticmethod
    def _vector_indexed(table: Table) -> bool:
        return any(index.columns == ["vector"] for index in table.list_indices())

    @_on_table(bool)
    def has_vector_index(self, table: Table) -> bool:
        """Whether `optimize` has built the ANN vector index."""
        return self._vector_indexed(table)

    @_on_table(int)
    def unindexed_text_rows(self, table: Table) -> int:
        """Rows the full-text index has not absorbed yet (searched, but more slowly)."""
        fts = [index.name for index in table.list_indices() if index.index_type == "FTS"]
        return self._unindexed_rows(table, fts[0]) if fts else table.count_rows()

    @staticmethod
    def _unindexed_rows(table: Table, index_name: str) -> int:
        """Rows an index (one the table lists) has not absorbed yet."""
        stats = table.index_stats(index_name)
        assert stats is not None
        return int(stats.num_unindexed_rows)

    @_on_table(list)
    def retire_versions(
        self, table: Table, doc_ids: Iterable[str], keep: int
    ) -> list[tuple[str, str]]:
        """Delete all but the `keep` most recent versions of each document; returns the
        (doc_id, version) pairs removed. Recency is the time a version was first discovered."""
        newest: dict[str, dict[str, Any]] = {}
        for row in self._select_in(table, "doc_id", doc_ids, ["doc_id", "version", "ingested_at"]):
            newest.setdefault(row["doc_id"], {})[row["version"]] = row["ingested_at"]
        retired = [
            (doc_id, version)
            for doc_id, versions in newest.items()
            for version in sorted(versions, key=versions.__getitem__, reverse=True)[keep:]
        ]
        if retired:
            table.delete(
                " OR ".join(
                    f"(doc_id = {_sql_string(d)} AND version = {_sql_string(v)})"
                    for d, v in retired
                )
            )
        return retired

    @_on_table(set)
    def versions_of(self, table: Table, doc_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(doc_id, version) pairs in the table for these documents."""
        rows = self._select_in(table, "doc_id", doc_ids, ["doc_id", "version"])
        return {(row["doc_id"], row["version"]) for row in rows}

    @_on_table(dict)
    def vectors_of(self, table: Table, chunk_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vector of each of these chunks the table holds."""
        rows = self._select_in(table, "chunk_id", chunk_ids, ["chunk_id", "vector"])
        return {row["chunk_id"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}

    @_on_table(dict)
    def access_of(self, table: Table, doc_ids: Iterable[str]) -> dict[str, set[Access]]:
        """The distinct (acl, subjects) among each document's rows."""
        found: dict[str, set[Access]] = {}
        for row in self._select_in(table, "doc_id", doc_ids, ["doc_id", "acl", "subjects"]):
            access = (tuple(row["acl"] or ()), tuple(row["subjects"] or ()))
            found.setdefault(row["doc_id"], set()).add(access)
        return found

    @_on_table(lambda: None)
    def set_access(
        self, table: Table, doc_id: str, acl: Iterable[str], subjects: Iterable[str]
    ) -> None:
        """Give every row of a document this acl and these subjects in one commit, so no
        query sees some rows with the old access and some with the new."""
        table.update(
            where=f"doc_id = {_sql_string(doc_id)}",
            values_sql={"acl": _sql_string_list(acl), "subjects": _sql_string_list(subjects)},
        )

    @_on_table(list)
    def delete_documents(self, table: Table, doc_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Delete every row of these documents; returns the (doc_id, version) pairs removed.
        Older table versions keep them until those are cleaned up."""
        removed = sorted(self.versions_of(doc_ids))
        if removed:
            table.delete(_sql_in("doc_id", {doc_id for doc_id, _ in removed}))
        return removed

    @_on_table(list)
    def chunk_ids_of(self, table: Table, doc_ids: Iterable[str]) -> list[str]:
        """Chunk ids these documents have in the current table."""
        return [r["chunk_id"] for r in self._select_in(table, "doc_id", doc_ids, ["chunk_id"])]

    @_on_table(set)
    def documents_matching(self, table: Table, selector: DocumentSelector) -> set[str]:
        """Ids of the selected documents that have a row."""
        where = " AND ".join(_selection(selector)) or "TRUE"
        return {row["doc_id"] for row in self._select(table, where, ["doc_id"])}

    @_on_table(list)
    def rows(
        self,
        table: Table,
        selector: DocumentSelector = EVERY_DOCUMENT,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of the selected documents, with these columns (default: all, vector too)."""
        where = " AND ".join(_selection(selector)) or "TRUE"
        return self._select(table, where, list(columns or table.schema.names))

    @_on_table(list)
    def first_chunk_texts(self, table: Table, doc_ids: Sequence[str], limit: int) -> list[str]:
        """Text of the first chunk of the first `limit` documents' versions, at most `limit`."""
        if not doc_ids:
            return []
        where = f"{_sql_in('doc_id', doc_ids[:limit])} AND position = 0"
        rows = table.search().where(where).select(["text"]).limit(limit).to_list()
        return [row["text"] for row in rows]

    @_on_table(int)
    def blank_chunks(self, table: Table) -> int:
        """Rows whose text is empty or whitespace."""
        return int(table.count_rows("char_length(trim(text)) = 0"))

    @_on_table(lambda: None)
    def vector_dimension(self, table: Table) -> int | None:
        """Length of the stored vectors, or None before anything was indexed."""
        return int(table.schema.field("vector").type.list_size)

    @_on_table(list)
    def versions_holding(self, table: Table, doc_ids: Iterable[str]) -> list[int]:
        """Table versions still on storage in which any of these documents has a row."""
        doc_ids = sorted(set(doc_ids))
        if not doc_ids:
            return []
        where = _sql_in("doc_id", doc_ids)
        return [
            version
            for version, checked_out in self._every_version(table)
            if checked_out.count_rows(where)
        ]

    @_on_table(set)
    def chunk_ids_in_history(self, table: Table, doc_ids: Iterable[str]) -> set[str]:
        """Chunk ids these documents have in any table version still on storage."""
        doc_ids = sorted(set(doc_ids))
        if not doc_ids:
            return set()
        where = _sql_in("doc_id", doc_ids)
        return {
            row["chunk_id"]
            for _, checked_out in self._every_version(table)
            for row in self._select(checked_out, where, ["chunk_id"])
        }

    @staticmethod
    def _every_version(table: Table) -> Iterator[tuple[int, Table]]:
        """The table checked out at each version still on storage, oldest first."""
        for version in [v["version"] for v in table.list_versions()]:
            table.checkout(version)
            yield version, table

    @_on_table(lambda: TableStorage(versions=[], fragments=0, unindexed_rows={}))
    def storage(self, table: Table) -> TableStorage:
        """Versions, data fragments and index lag of the table, as erasure leaves them."""
        return TableStorage(
            versions=[v["version"] for v in table.list_versions()],
            fragments=len(table.to_lance().get_fragments()),
            unindexed_rows={
                index.name: self._unindexed_rows(table, index.name)
                for index in table.list_indices()
            },
        )

    @_on_table(list)
    def tags(self, table: Table) -> list[str]:
        """Names of tagged table versions (tags keep a version from being cleaned up)."""
        return sorted(table.tags.list())

    @_on_table(list)
    def purge_history(self, table: Table, *, untag: bool) -> list[str]:
        """Erase deleted rows for good: rewrite every data file that still holds a deleted
        row (compaction alone leaves files below 10% deleted as they are, the row hidden but
        on disk), then drop every older table version and the files only they used, index
        files included. Tagged versions block that: with `untag` their tags are removed and
        returned, otherwise `TaggedVersionsError` is raised before anything changes."""
        tags = self.tags()
        if tags and not untag:
            raise TaggedVersionsError(tags)
        for tag in tags:
            table.tags.delete(tag)
        table.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        with warnings.catch_warnings():
            # "removes every version except the latest": exactly what erasure needs. Readers
            # open the latest version for every query, so none is left reading an old one.
            warnings.filterwarnings("ignore", message=".*cleanup_older_than=0.*")
            # Files no manifest names may belong to a write in progress (the streaming
            # worker's): deleting them would corrupt it. Erased rows are only in committed
            # files, which the dropped versions name, so those go; a failed write's leftovers
            # go after Lance's 7 days.
            table.optimize(cleanup_older_than=timedelta(0), delete_unverified=False)
        return tags

    @_on_table(dict)
    def live_versions(self, table: Table) -> LiveVersions:
        """Chunk count of every (doc_id, version) in the table."""
        pairs = table.search().select(["doc_id", "version"]).limit(None).to_arrow()
        grouped = pairs.group_by(["doc_id", "version"]).aggregate([([], "count_all")])
        return {(row["doc_id"], row["version"]): row["count_all"] for row in grouped.to_pylist()}

    @_on_table(list)
    def vector_search(
        self,
        table: Table,
        vector: np.ndarray,
        limit: int,
        chunk_filter: ChunkFilter | None = None,
    ) -> list[dict[str, Any]]:
        """Nearest chunks by cosine distance (`_distance`), the filter applied before ranking."""
        query = cast(LanceVectorQueryBuilder, table.search(vector)).distance_type("cosine")
        return self._ranked(query, limit, _prefilter(chunk_filter), "_distance")

    @_on_table(list)
    def keyword_search(
        self, table: Table, text: str, limit: int, chunk_filter: ChunkFilter | None = None
    ) -> list[dict[str, Any]]:
        """Best BM25 matches (`_score`) from the full-text index, the filter applied first."""
        try:
            query = table.search(text, query_type="fts", fts_columns=TEXT_SEARCH_COLUMN)
            return self._ranked(query, limit, _prefilter(chunk_filter), "_score")
        except ValueError as exc:  # the table's first write landed, its text index not yet
            if "INVERTED index" in str(exc):
                return []
            raise

    @staticmethod
    def _ranked(query: Any, limit: int, where: str | None, score: str) -> list[dict[str, Any]]:
        if where:
            query = query.where(where, prefilter=True)
        rows: list[dict[str, Any]] = (
            query.limit(limit).select([*RESULT_COLUMNS, "vector", score]).to_list()
        )
        return rows

    @_on_table(lambda: IndexStats.of({}, table_version=0))
    def stats(self, table: Table, live: LiveVersions | None = None) -> IndexStats:
        """Counts of the current table; pass `live_versions()` if already at hand."""
        return IndexStats.of(self.live_versions() if live is None else live, table.version)

    @classmethod
    def _select_in(
        cls, table: Table, column: str, values: Iterable[str], columns: list[str]
    ) -> list[dict[str, Any]]:
        """Rows whose `column` holds one of `values`; no query at all for no values."""
        wanted = sorted(set(values))
        return cls._select(table, _sql_in(column, wanted), columns) if wanted else []

    @staticmethod
    def _select(table: Table, where: str, columns: list[str]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            table.search().where(where).select(columns).limit(None).to_arrow().to_pylist()
        )
        return result
