"""A parsing change reaches an existing index: every document gets a new version through the
normal path, and an index written before chunks carried their header takes the new column."""

from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from rag_assets.ingest import backfill_index, local_instance
from rag_core import services
from rag_core.adapters.index import TABLE_NAME
from rag_core.domain import ids
from rag_core.domain.chunk_store import chunk_schema
from rag_core.domain.layout import Artifact, artifact_key
from rag_core.settings import Settings

from conftest import ingest


def _versions(settings: Settings) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in services.chunk_index(settings).rows():
        found.setdefault(row["doc_id"], set()).add(row["version"])
    return found


def test_a_new_revision_is_reindexed_by_a_backfill(
    rag_home: Settings, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(rag_home, corpus_copy)
    before = _versions(rag_home)
    assert len(before) == 3 and all(len(versions) == 1 for versions in before.values())

    monkeypatch.setattr(ids, "INDEX_REVISION", ids.INDEX_REVISION + "-next")
    keys = backfill_index(rag_home, local_instance(rag_home))

    after = _versions(rag_home)
    assert len(keys) == 3 and after.keys() == before.keys()
    for doc_id, [version] in after.items():
        assert version not in before[doc_id], "each document has only its new version"
        [old] = before[doc_id]
        store = services.object_store(rag_home)
        assert not store.exists(artifact_key(Artifact.CHUNKS, doc_id, old)), "old one retired"


def _rows(schema: pa.Schema, text: str, section: str) -> pa.Table:
    row: dict[str, object] = dict.fromkeys(schema.names)
    row.update(chunk_id=text[:8], doc_id="d", version="v", position=0, text=text, vector=[0.5] * 4)
    if "indexed_text" in schema.names:
        row["indexed_text"] = f"{section}\n\n{text}"
    return pa.Table.from_pylist([row], schema=schema)


def test_an_index_from_before_chunk_headers_takes_the_new_column(rag_home: Settings) -> None:
    """The table gets `indexed_text` (its old rows match on their text) and full-text search
    moves to it, so a new row matches on its header."""
    old_schema = pa.schema([f for f in chunk_schema(4) if f.name != "indexed_text"])
    table = lancedb.connect(rag_home.index_uri).create_table(TABLE_NAME, schema=old_schema)
    table.add(_rows(old_schema, "vacuum reclaims storage", ""))
    table.create_fts_index("text")

    index = services.chunk_index(rag_home)
    assert index.upsert(_rows(chunk_schema(4), "cluster reorders a table", "Maintenance")) == 1

    assert [r["text"] for r in index.keyword_search("maintenance", 5)] == [
        "cluster reorders a table"
    ]
    assert [r["text"] for r in index.keyword_search("reclaims", 5)] == ["vacuum reclaims storage"]
