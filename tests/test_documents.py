"""The way from Dagster's opaque partitions to the documents: each partition's own metadata
with a link to `GET /v1/documents/{doc_id}` (and no name), and `ragctl documents`."""

import json

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from typer.testing import CliRunner

from rag_assets.documents import document_assets
from rag_assets.ingest import local_instance
from rag_core import services
from rag_core.adapters.catalog import all_manifests
from rag_core.domain.ids import split_partition_key
from rag_core.settings import Settings
from rag_serving.cli import app

from conftest import SAMPLE_CORPUS, ingest

API_URL = "https://rag.example:8443"
runner = CliRunner()


def _latest_by_partition(
    instance: dg.DagsterInstance, asset: dg.AssetsDefinition
) -> dict[str, dict[str, object]]:
    """Metadata values of each partition's latest materialization of `asset`."""
    records = instance.fetch_materializations(asset.key, limit=100).records  # newest first
    latest: dict[str, dict[str, object]] = {}
    for record in reversed(records):
        event = record.asset_materialization
        assert event is not None and event.partition is not None
        latest[event.partition] = {key: value.value for key, value in event.metadata.items()}
    return latest


def test_each_partition_has_its_own_metadata_and_a_link(
    rag_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_API_URL", API_URL)
    settings = Settings()
    keys = ingest(settings, SAMPLE_CORPUS / "pip", SAMPLE_CORPUS / "specs")
    instance = local_instance(settings)
    live = services.chunk_index(settings).live_versions()
    manifests = {m.partition_key: m for m in all_manifests(services.object_store(settings))}
    assert len(keys) == 4 and len(set(live.values())) > 1, "documents of different sizes"

    parsed, indexed = (
        _latest_by_partition(instance, _asset(n)) for n in ("parsed_document", "index")
    )
    for metadata in (parsed, indexed):
        assert {key: values["document"] for key, values in metadata.items()} == {
            key: f"{API_URL}/v1/documents/{split_partition_key(key)[0]}" for key in keys
        }
    assert {key: values["chunks"] for key, values in indexed.items()} == {
        key: live[split_partition_key(key)] for key in keys
    }
    assert {key: values["bytes"] for key, values in indexed.items()} == {
        key: manifests[key].size for key in keys
    }
    assert {values["parse_status"] for values in parsed.values()} == {"parsed"}
    own = {"document", "chunks", "bytes", "parse_status", "elements", "pages"}
    for metadata in (parsed, indexed):  # the rest are the run's totals, and say so
        assert {key for values in metadata.values() for key in values if key not in own}
        assert all(key.startswith("run/") for v in metadata.values() for key in v if key not in own)
    pdf = next(key for key in keys if manifests[key].file_name.endswith(".pdf"))
    assert parsed[pdf]["pages"] > 1
    assert all("pages" not in values for key, values in parsed.items() if key != pdf)

    # Nothing in Dagster's history names a document: no file name, title or source key.
    history = serialize_value(
        [instance.fetch_materializations(a.key, limit=100).records for a in document_assets]
    )
    titles = {row["title"] for row in services.chunk_index(settings).rows(columns=["title"])}
    names = {m.file_name for m in manifests.values()} | {m.source_key for m in manifests.values()}
    assert not [name for name in names | titles if name in history]


def _asset(name: str) -> dg.AssetsDefinition:
    return next(asset for asset in document_assets if asset.key.to_user_string() == name)


def test_ragctl_documents_finds_shows_and_lists(rag_home: Settings) -> None:
    ingest(rag_home, SAMPLE_CORPUS / "pip")

    found = runner.invoke(app, ["documents", "find", "AUTHENTICATION", "--json"])
    assert found.exit_code == 0, found.output
    [document] = json.loads(found.stdout)["documents"]
    assert document["source_key"] == "documents/authentication.md"

    shown = runner.invoke(app, ["documents", "show", document["doc_id"], "--json"])
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.stdout)
    assert details["title"] == document["title"] and details["versions"][0]["chunks"] > 0
    table = runner.invoke(app, ["documents", "show", document["doc_id"]])
    assert table.exit_code == 0 and "documents/authentication.md" in table.stdout

    listed = runner.invoke(app, ["documents", "list", "--limit", "2"])
    assert listed.exit_code == 0 and "1-2 of 3 documents" in listed.output
    unknown = runner.invoke(app, ["documents", "show", "0" * 32])
    assert unknown.exit_code == 1 and "no such document" in unknown.output
