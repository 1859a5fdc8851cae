"""Dagster definitions, materialized for real into a temporary RAG_HOME."""

from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from rag_assets.definitions import defs
from rag_assets.documents import (
    PARTITIONS_NAME,
    chunks,
    embeddings,
    index,
    parsed_document,
    raw_document,
)
from rag_assets.ingest import local_instance, register_versions
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.adapters.catalog import add_sources, discover
from rag_core.domain.chunk_store import chunk_schema
from rag_core.domain.layout import Artifact, artifact_key
from rag_core.settings import Settings

from conftest import SAMPLE_CORPUS, ingest

ASSETS = [raw_document, parsed_document, chunks, embeddings, index]


def _materialize(settings: Settings, instance: dg.DagsterInstance, keys: list[str]):
    return dg.materialize(
        ASSETS,
        instance=instance,
        resources={"rag": RagResource.for_settings(settings)},
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )


def _table_rows(settings: Settings) -> list[dict]:
    return sorted(services.chunk_index(settings).rows(), key=lambda row: row["chunk_id"])


def test_definitions_load() -> None:
    assert {key.to_user_string() for key in defs().resolve_all_asset_keys()} == {
        "raw_document", "parsed_document", "chunks", "embeddings", "index",
        "raw/support_tickets", "stg_support_tickets", "support_ticket_documents",
        "warehouse_row_events", "erasure_request", "evaluation",
    }  # fmt: skip
    upstream = defs().resolve_asset_graph().get(raw_document.key).parent_keys
    assert dg.AssetKey("warehouse_row_events") in upstream
    assert defs().resolve_job_def("ingest_documents") is not None
    for job in ("retire_documents", "rtbf", "sync_warehouse", "nightly_evaluation"):
        assert defs().resolve_job_def(job) is not None
    for sensor in ("object_store_changes", "document_change_runs"):
        assert defs().resolve_sensor_def(sensor) is not None


def test_materialize_partitions_into_lancedb(rag_home: Settings) -> None:
    store = services.object_store(rag_home)
    add_sources(store, [SAMPLE_CORPUS / "pip", SAMPLE_CORPUS / "postgresql/tutorial-start.html"])
    instance = local_instance(rag_home)
    versions = discover(store)
    keys = register_versions(instance, [v.partition_key for v in versions])
    assert len(keys) == 4

    result = _materialize(rag_home, instance, keys)

    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    materialization = result.asset_materializations_for_node("index")[0]
    rows = _table_rows(rag_home)
    assert materialization.metadata["run/inserted_chunks"].value == len(rows) > 0
    assert {row["doc_id"] for row in rows} == {v.doc_id for v in versions}
    sources = {row["source_uri"] for row in rows}
    assert any(uri.endswith("/documents/getting-started.md") for uri in sources)
    row = rows[0]
    assert len(row["vector"]) == 384 and row["text"] and row["title"]
    assert row["acl"] == [] and row["subjects"] == [] and row["ingested_at"] is not None
    for key in keys:
        assert key.split("@")[0] in {v.doc_id for v in versions}
        assert "/" not in key and "." not in key, "no file names in partition keys"


def test_full_text_index_covers_every_row(rag_home: Settings, corpus_copy: Path) -> None:
    ingest(rag_home, corpus_copy / "pip")
    (corpus_copy / "extra.md").write_text("# Extra\n\nThe zyzzyva beetle lives in palm trees.\n")
    ingest(rag_home, corpus_copy / "extra.md")
    chunk_index = services.chunk_index(rag_home)
    assert chunk_index.unindexed_text_rows() == 0
    hits = chunk_index.keyword_search("zyzzyva", 3)
    assert [hit["source_uri"].rsplit("/", 1)[1] for hit in hits] == ["extra.md"]


def test_reingesting_the_same_files_changes_nothing(rag_home: Settings) -> None:
    ingest(rag_home, SAMPLE_CORPUS / "pip")
    version_before = services.chunk_index(rag_home).table_version()
    rows_before = _table_rows(rag_home)

    assert ingest(rag_home, SAMPLE_CORPUS / "pip") == []

    instance = local_instance(rag_home)
    keys = instance.get_dynamic_partitions(PARTITIONS_NAME)
    assert _materialize(rag_home, instance, keys).success, "replaying partitions is a no-op"
    assert services.chunk_index(rag_home).table_version() == version_before
    assert _table_rows(rag_home) == rows_before


def test_changed_file_replaces_old_chunks_without_a_gap(
    rag_home: Settings, corpus_copy: Path
) -> None:
    [old_key] = ingest(rag_home, corpus_copy / "mosquitto-readme.md")
    doc_id, old_version = old_key.split("@")
    first_table_version = services.chunk_index(rag_home).table_version()

    readme = corpus_copy / "mosquitto-readme.md"
    readme.write_text(readme.read_text() + "\n\n## Changelog\n\nThe broker now speaks MQTT 5.\n")
    [new_key] = ingest(rag_home, readme)

    rows = _table_rows(rag_home)
    assert {row["version"] for row in rows} == {new_key.split("@")[1]}
    assert any("MQTT 5" in row["text"] for row in rows)
    instance = local_instance(rag_home)
    assert instance.get_dynamic_partitions(PARTITIONS_NAME) == [new_key]
    store = services.object_store(rag_home)
    assert not store.exists(artifact_key(Artifact.RAW, doc_id, old_version))
    # Every table version since the first ingest holds the document: new rows came first.
    index = services.chunk_index(rag_home)
    since_first = [v for v in index.storage().versions if v >= first_table_version]
    assert set(since_first) <= set(index.versions_holding([doc_id])), since_first


def test_keep_versions_keeps_the_newest(
    rag_home: Settings, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_KEEP_VERSIONS", "2")
    settings = Settings()
    readme = corpus_copy / "mosquitto-readme.md"
    written = []
    for revision in range(3):
        readme.write_text(f"# Mosquitto revision {revision}\n\nThe broker revision {revision}.\n")
        written += ingest(settings, readme)
    live = services.chunk_index(settings).live_versions()
    assert {version for _, version in live} == {key.split("@")[1] for key in written[1:]}
    assert local_instance(settings).get_dynamic_partitions(PARTITIONS_NAME) == written[1:]


def test_unparseable_file_is_recorded_and_the_rest_indexed(
    rag_home: Settings, corpus_copy: Path
) -> None:
    (corpus_copy / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    keys = ingest(rag_home, corpus_copy)
    assert len(keys) == 4
    status = services.index_status(rag_home)
    assert status.failed_documents == 1
    assert status.documents == 3
    [failure] = [
        event
        for event in local_instance(rag_home)
        .fetch_materializations(dg.AssetKey("parsed_document"), limit=10)
        .records
    ][:1]
    metadata = failure.asset_materialization.metadata
    assert metadata["run/failed"].value == 1 and metadata["run/parsed"].value == 3


def test_wiping_the_index_and_backfilling_reproduces_it(rag_home: Settings) -> None:
    ingest(rag_home, SAMPLE_CORPUS / "pip", SAMPLE_CORPUS / "dpkg")
    before = _table_rows(rag_home)
    services.chunk_index(rag_home)._db.drop_table("chunks")

    instance = local_instance(rag_home)
    keys = instance.get_dynamic_partitions(PARTITIONS_NAME)
    assert _materialize(rag_home, instance, keys).success

    after = _table_rows(rag_home)
    assert [r["chunk_id"] for r in after] == [r["chunk_id"] for r in before]
    for old, new in zip(before, after, strict=True):
        assert {k: v for k, v in old.items() if k != "vector"} == {
            k: v for k, v in new.items() if k != "vector"
        }
        assert np.allclose(old["vector"], new["vector"], atol=1e-6)


def test_index_check_fails_on_rows_without_a_live_partition(rag_home: Settings) -> None:
    ingest(rag_home, SAMPLE_CORPUS / "pip")
    index = services.chunk_index(rag_home)
    row = index.rows()[0]
    row.update(chunk_id="stray", doc_id="f" * 32, version="0" * 16)
    index.upsert(pa.Table.from_pylist([row], schema=chunk_schema(len(row["vector"]))))

    instance = local_instance(rag_home)
    keys = instance.get_dynamic_partitions(PARTITIONS_NAME)
    result = _materialize(rag_home, instance, keys)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "vector_dimension": True, "no_empty_chunks": True, "rows_match_live_chunks": False,
        "titles_name_their_documents": True, "no_navigation_chunks": True,
    }  # fmt: skip


def test_chunk_checks_name_documents_that_do_not_read_as_documents(
    rag_home: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "links.html").write_text("<html><body><p>Prev | Up | Home | Next</p></body></html>")
    (folder / "notes.txt").write_text("remember to rotate the keys on friday\n")
    (folder / "guide.md").write_text("# Guide\n\nInstall the tool first, then run it once.\n")
    store = services.object_store(rag_home)
    add_sources(store, [folder])
    instance = local_instance(rag_home)
    by_name = {v.file_name: v.partition_key for v in discover(store)}
    result = _materialize(rag_home, instance, register_versions(instance, list(by_name.values())))

    checks = {
        c.check_name: c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == dg.AssetKey("chunks")
    }
    untitled, navigation = checks["titles_name_their_documents"], checks["no_navigation_chunks"]
    assert not untitled.passed and not navigation.passed
    assert untitled.severity == navigation.severity == dg.AssetCheckSeverity.WARN
    assert sorted(untitled.metadata["partitions"].value) == sorted(
        [by_name["links.html"], by_name["notes.txt"]]
    )
    assert navigation.metadata["partitions"].value == [by_name["links.html"]]
