"""The LanceDB `chunks` table: idempotent upserts, version retirement, vector search.

Writes are idempotent by construction: chunk ids are deterministic and `merge_insert` only
inserts ids the table lacks, so replaying a document version leaves the table (and its
version number) untouched. A new version is written before older ones are deleted.
"""

import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from rag_core.settings import Settings

TABLE_NAME = "chunks"
# Columns every caller may read back; the vector stays in the table.
RESULT_COLUMNS = [
    "chunk_id", "doc_id", "version", "position", "text", "source_uri", "title", "section",
    "page", "acl", "subjects", "ingested_at",
]  # fmt: skip


def chunk_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("version", pa.string(), nullable=False),
            pa.field("position", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
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


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(sql_string(v) for v in values)})"


def sql_string_list(values: Iterable[str]) -> str:
    """A list-of-strings SQL literal, typed so that an empty list is one too."""
    return f"arrow_cast(make_array({', '.join(sql_string(v) for v in values)}), 'List(Utf8)')"


LiveVersions = dict[tuple[str, str], int]
Access = tuple[tuple[str, ...], tuple[str, ...]]  # a row's (acl, subjects)


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

    def table(self) -> Any | None:
        """The chunks table, or None before anything was indexed."""
        try:
            return self._db.open_table(TABLE_NAME)
        except (FileNotFoundError, ValueError):
            return None

    def table_version(self) -> int:
        """Version of the chunks table (0 before the first write); any write changes it."""
        table = self.table()
        return 0 if table is None else int(table.version)

    def row_count(self) -> int:
        """Chunks in the current table, from the fragments' metadata: no scan, unlike
        `stats()`, so a metrics scrape costs the same however large the index grows."""
        table = self.table()
        return 0 if table is None else int(table.count_rows())

    def recent_version(self, max_age: float) -> int:
        """`table_version()` as read at most `max_age` seconds ago. Opening the table costs
        far more than a cache hit, so a hot path that only needs the version (the response
        cache key) opens it once per `max_age` instead of on every call."""
        with self._version_lock:
            now = time.monotonic()
            if self._version_read is None or now - self._version_read[0] >= max_age:
                self._version_read = (now, self.table_version())
            return self._version_read[1]

    def _table_for_write(self, dimension: int) -> Any:
        table = self.table()
        if table is None:
            table = self._db.create_table(TABLE_NAME, schema=chunk_schema(dimension), exist_ok=True)
        return table

    def upsert(self, rows: pa.Table) -> int:
        """Insert rows whose chunk_id is new; returns how many were inserted."""
        if rows.num_rows == 0:
            return 0
        dimension = rows.schema.field("vector").type.list_size
        table = self._table_for_write(dimension)
        ids = rows.column("chunk_id").to_pylist()
        present = {
            r["chunk_id"] for r in self._select(table, sql_in("chunk_id", ids), ["chunk_id"])
        }
        new_rows = rows.filter(pa.array([chunk_id not in present for chunk_id in ids]))
        if new_rows.num_rows:
            table.merge_insert("chunk_id").when_not_matched_insert_all().execute(
                new_rows.cast(table.schema)
            )
            self._ensure_text_index(table)
        return new_rows.num_rows

    def _ensure_text_index(self, table: Any) -> None:
        """Keep the full-text index on `text`; rows added since it was built are still searched,
        and `optimize` folds them in."""
        if not any(index.index_type == "FTS" for index in table.list_indices()):
            table.create_fts_index("text")

    def optimize(self) -> None:
        """Compact fragments and bring every index up to date with the rows; past
        `vector_index_min_rows` rows, build the ANN vector index (below it, exact search is
        fast enough and exact)."""
        table = self.table()
        if table is None:
            return
        table.optimize()
        has_vector_index = any(i.columns == ["vector"] for i in table.list_indices())
        if not has_vector_index and table.count_rows() >= self._vector_index_min_rows:
            table.create_index(
                metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ"
            )

    def unindexed_text_rows(self) -> int:
        """Rows the full-text index has not absorbed yet (searched, but more slowly)."""
        table = self.table()
        if table is None:
            return 0
        fts = [index.name for index in table.list_indices() if index.index_type == "FTS"]
        return int(table.index_stats(fts[0]).num_unindexed_rows) if fts else table.count_rows()

    def retire_versions(self, doc_ids: Iterable[str], keep: int) -> list[tuple[str, str]]:
        """Delete all but the `keep` most recent versions of each document; returns the
        (doc_id, version) pairs removed. Recency is the time a version was first discovered."""
        table = self.table()
        doc_ids = sorted(set(doc_ids))
        if table is None or not doc_ids:
            return []
        newest: dict[str, dict[str, Any]] = {}
        for row in self._select(
            table, sql_in("doc_id", doc_ids), ["doc_id", "version", "ingested_at"]
        ):
            newest.setdefault(row["doc_id"], {})[row["version"]] = row["ingested_at"]
        retired = [
            (doc_id, version)
            for doc_id, versions in newest.items()
            for version in sorted(versions, key=versions.__getitem__, reverse=True)[keep:]
        ]
        if retired:
            table.delete(
                " OR ".join(
                    f"(doc_id = {sql_string(d)} AND version = {sql_string(v)})" for d, v in retired
                )
            )
        return retired

    def versions_of(self, doc_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(doc_id, version) pairs in the table for these documents."""
        table = self.table()
        doc_ids = sorted(set(doc_ids))
        if table is None or not doc_ids:
            return set()
        rows = self._select(table, sql_in("doc_id", doc_ids), ["doc_id", "version"])
        return {(row["doc_id"], row["version"]) for row in rows}

    def vectors_of(self, chunk_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vector of each of these chunks the table holds."""
        table = self.table()
        chunk_ids = sorted(set(chunk_ids))
        if table is None or not chunk_ids:
            return {}
        rows = self._select(table, sql_in("chunk_id", chunk_ids), ["chunk_id", "vector"])
        return {row["chunk_id"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}

    def access_of(self, doc_ids: Iterable[str]) -> dict[str, set[Access]]:
        """The distinct (acl, subjects) among each document's rows."""
        table = self.table()
        doc_ids = sorted(set(doc_ids))
        if table is None or not doc_ids:
            return {}
        found: dict[str, set[Access]] = {}
        for row in self._select(table, sql_in("doc_id", doc_ids), ["doc_id", "acl", "subjects"]):
            access = (tuple(row["acl"] or ()), tuple(row["subjects"] or ()))
            found.setdefault(row["doc_id"], set()).add(access)
        return found

    def set_access(self, doc_id: str, acl: Iterable[str], subjects: Iterable[str]) -> None:
        """Give every row of a document this acl and these subjects in one commit, so no
        query sees some rows with the old access and some with the new."""
        table = self.table()
        if table is not None:
            table.update(
                where=f"doc_id = {sql_string(doc_id)}",
                values_sql={"acl": sql_string_list(acl), "subjects": sql_string_list(subjects)},
            )

    def delete_documents(self, doc_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Delete every row of these documents; returns the (doc_id, version) pairs removed.
        Older table versions keep them until those are cleaned up."""
        removed = sorted(self.versions_of(doc_ids))
        table = self.table()
        if removed and table is not None:
            table.delete(sql_in("doc_id", {doc_id for doc_id, _ in removed}))
        return removed

    def chunk_ids_of(self, doc_ids: Iterable[str]) -> list[str]:
        table = self.table()
        doc_ids = sorted(set(doc_ids))
        if table is None or not doc_ids:
            return []
        return [r["chunk_id"] for r in self._select(table, sql_in("doc_id", doc_ids), ["chunk_id"])]

    def documents_where(self, where: str) -> set[str]:
        """Ids of documents with a row matching the SQL filter `where`."""
        table = self.table()
        if table is None:
            return set()
        return {row["doc_id"] for row in self._select(table, where, ["doc_id"])}

    def versions_holding(self, doc_ids: Iterable[str]) -> list[int]:
        """Table versions still on storage in which any of these documents has a row."""
        where = sql_in("doc_id", sorted(set(doc_ids)))
        if where.endswith("IN ()"):
            return []
        return [version for version, table in self._every_version() if table.count_rows(where)]

    def chunk_ids_in_history(self, doc_ids: Iterable[str]) -> set[str]:
        """Chunk ids these documents have in any table version still on storage."""
        where = sql_in("doc_id", sorted(set(doc_ids)))
        if where.endswith("IN ()"):
            return set()
        return {
            row["chunk_id"]
            for _, table in self._every_version()
            for row in self._select(table, where, ["chunk_id"])
        }

    def _every_version(self) -> Iterator[tuple[int, Any]]:
        """The table checked out at each version still on storage, oldest first."""
        table = self.table()
        if table is None:
            return
        for version in [v["version"] for v in table.list_versions()]:
            table.checkout(version)
            yield version, table

    def tags(self) -> list[str]:
        """Names of tagged table versions (tags keep a version from being cleaned up)."""
        table = self.table()
        return [] if table is None else sorted(table.tags.list())

    def purge_history(self, *, untag: bool) -> list[str]:
        """Erase deleted rows for good: rewrite every data file that still holds a deleted
        row (compaction alone leaves files below 10% deleted as they are, the row hidden but
        on disk), then drop every older table version and the files only they used, index
        files included. Tagged versions block that: with `untag` their tags are removed and
        returned, otherwise `TaggedVersionsError` is raised before anything changes."""
        table = self.table()
        if table is None:
            return []
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

    def live_versions(self) -> LiveVersions:
        """Chunk count of every (doc_id, version) in the table."""
        table = self.table()
        if table is None:
            return {}
        pairs = table.search().select(["doc_id", "version"]).limit(None).to_arrow()
        grouped = pairs.group_by(["doc_id", "version"]).aggregate([([], "count_all")])
        return {(row["doc_id"], row["version"]): row["count_all"] for row in grouped.to_pylist()}

    def vector_search(
        self, vector: np.ndarray, limit: int, where: str | None = None
    ) -> list[dict[str, Any]]:
        """Nearest chunks by cosine distance (`_distance`), `where` applied before ranking."""
        table = self.table()
        if table is None:
            return []
        query = table.search(vector).distance_type("cosine")
        return self._ranked(query, limit, where, "_distance")

    def keyword_search(
        self, text: str, limit: int, where: str | None = None
    ) -> list[dict[str, Any]]:
        """Best BM25 matches (`_score`) from the full-text index, `where` applied first."""
        table = self.table()
        if table is None:
            return []
        try:
            return self._ranked(table.search(text, query_type="fts"), limit, where, "_score")
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

    def stats(self, live: LiveVersions | None = None) -> IndexStats:
        """Counts of the current table; pass `live_versions()` if already at hand."""
        table = self.table()
        if table is None:
            return IndexStats.of({}, table_version=0)
        return IndexStats.of(self.live_versions() if live is None else live, table.version)

    @staticmethod
    def _select(table: Any, where: str, columns: list[str]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            table.search().where(where).select(columns).limit(None).to_arrow().to_pylist()
        )
        return result
