"""An acl change at the source is a change event that updates the chunks' access in place:
same version, same chunk ids and vectors, no call to the embedding model, and the new groups
take effect on the next query. Replaying the event changes nothing."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rag_assets.definitions import build_defs
from rag_assets.documents import ingest_documents
from rag_assets.ingest import ingest_sources, local_instance
from rag_assets.resources import RagResource
from rag_core import services
from rag_core.adapters.catalog import put_source, read_manifest
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.warehouse.connection import connect
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.events import DocumentChange
from rag_core.domain.ids import doc_id_for
from rag_core.flows.changes import ChangeBatch, plan_changes
from rag_core.flows.streaming import StreamingIndexer
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings
from rag_core.sources import warehouse
from rag_core.sources.warehouse_sample import load_sample

from conftest import announce, process

KEY = "documents/finance/bonus-pool.md"
TEXT = b"# Bonus pool\n\nThe 2025 bonus pool is 4.2 percent of payroll, paid out in March.\n"
QUESTION = "How large is the bonus pool?"
TABLE = "support_ticket_documents"
TICKET = "TCK-1001"


@pytest.fixture
def encode_calls(rag_home: Settings, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many texts each call of the embedding model was given (one entry per call)."""
    model = services.embedder(rag_home)._model
    calls: list[int] = []
    encode = model.encode

    def counted(texts: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(texts))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(model, "encode", counted)
    return calls


@pytest.fixture
def worker(kafka_platform: Settings) -> Iterator[StreamingIndexer]:
    with StreamingIndexer(kafka_platform) as indexer:
        yield indexer


def doc_ids_seen(settings: Settings, groups: set[str], query: str = QUESTION) -> set[str]:
    hits = services.retriever(settings).search(query, 10, groups=frozenset(groups))
    return {hit.doc_id for hit in hits}


def rows_of(settings: Settings, doc_id: str) -> list[dict[str, Any]]:
    rows = services.chunk_index(settings).rows(DocumentSelector(doc_ids=(doc_id,)))
    return sorted(rows, key=lambda row: row["chunk_id"])


@pytest.mark.slow
def test_an_acl_change_in_a_sidecar_updates_the_chunks_without_embedding(
    worker: StreamingIndexer, encode_calls: list[int]
) -> None:
    settings = worker.settings
    store = worker.store
    doc_id = doc_id_for(store.uri_for(KEY))
    put_source(store, KEY, TEXT, SourceMetadata(acl=["finance"], subjects=["ceo"]))
    announce(settings)
    [added] = process(worker)
    before = rows_of(settings, doc_id)
    assert before and all(row["acl"] == ["finance"] for row in before)
    assert doc_id in doc_ids_seen(settings, {"finance"})
    assert doc_id not in doc_ids_seen(settings, {"staff"})

    put_source(store, KEY, TEXT, SourceMetadata(acl=["staff"]))
    [event] = announce(settings)
    encode_calls.clear()
    [changed] = process(worker)

    assert encode_calls == []
    assert [m.partition_key for m in changed.indexed] == [added.indexed[0].partition_key]
    assert changed.access_only == changed.indexed  # Dagster records it on `index` alone
    after = rows_of(settings, doc_id)
    assert [(r["chunk_id"], r["vector"], r["text"]) for r in after] == [
        (r["chunk_id"], r["vector"], r["text"]) for r in before
    ]
    assert all(row["acl"] == ["staff"] and row["subjects"] == [] for row in after)
    assert read_manifest(store, doc_id, added.indexed[0].version).acl == ["staff"]
    assert doc_id in doc_ids_seen(settings, {"staff"})
    assert doc_id not in doc_ids_seen(settings, {"finance"})

    table_version = services.chunk_index(settings).table_version()
    EventPublisher(settings).document_changes([event])
    [replayed] = process(worker)
    assert replayed.indexed == [] and replayed.retired == []
    assert services.chunk_index(settings).table_version() == table_version


@pytest.mark.slow
def test_an_acl_change_in_a_warehouse_row_updates_the_chunks_without_embedding(
    worker: StreamingIndexer, encode_calls: list[int]
) -> None:
    settings = worker.settings
    load_sample(settings)
    build_models(settings)
    publish = EventPublisher(settings).row_changes
    warehouse.announce_changes(settings, publish)
    process(worker)
    doc_id = doc_id_for(worker.store.uri_for(warehouse.document_key(TABLE, TICKET)))
    question = "invoice PDF shows the old company logo"
    assert doc_id in doc_ids_seen(settings, {"team:billing"}, question)

    # The model's acl column changes alone (say its definition now names a narrower team).
    with connect(settings) as connection:
        connection.cursor().execute(
            f"UPDATE {TABLE} SET acl = 'team:billing-leads' WHERE row_key = ?", [TICKET]
        )
    [change] = warehouse.announce_changes(settings, publish)
    encode_calls.clear()
    [changed] = process(worker)

    assert change.row_key == TICKET and encode_calls == []
    assert [m.doc_id for m in changed.indexed] == [doc_id]
    assert all(row["acl"] == ["team:billing-leads"] for row in rows_of(settings, doc_id))
    assert doc_id not in doc_ids_seen(settings, {"support", "team:billing"}, question)
    assert doc_id in doc_ids_seen(settings, {"team:billing-leads"}, question)

    table_version = services.chunk_index(settings).table_version()
    publish([change])
    [replayed] = process(worker)
    assert replayed.indexed == []
    assert services.chunk_index(settings).table_version() == table_version


@pytest.mark.slow
def test_a_run_over_a_partition_whose_acl_changed_calls_no_model(
    rag_home: Settings, encode_calls: list[int]
) -> None:
    """The Kafka sensor's path: the plan names the indexed partition again, and a run of the
    indexing job over it updates the rows' access while reusing the stored vectors."""
    settings = rag_home
    store = services.object_store(settings)
    index = services.chunk_index(settings)
    instance = local_instance(settings)
    put_source(store, KEY, TEXT, SourceMetadata(acl=["finance"]))
    [partition] = ingest_sources(settings, instance, [KEY])

    put_source(store, KEY, TEXT, SourceMetadata(acl=["staff"]))
    batch = ChangeBatch(event_times={KEY: datetime.now(UTC)})
    [manifest] = plan_changes(store, index, batch).upserts
    assert manifest.partition_key == partition and manifest.acl == ["staff"]
    encode_calls.clear()
    job = build_defs(RagResource.for_settings(settings)).resolve_job_def(ingest_documents.name)
    result = job.execute_in_process(instance=instance, partition_key=partition)

    assert result.success and encode_calls == []
    [materialization] = result.asset_materializations_for_node("index")
    assert materialization.metadata["run/access_updated_documents"].value == 1
    assert manifest.doc_id in doc_ids_seen(settings, {"staff"})
    assert manifest.doc_id not in doc_ids_seen(settings, {"finance"})
    assert plan_changes(store, index, batch).empty


def test_an_acl_change_is_announced_with_the_same_content_version(rag_home: Settings) -> None:
    store = services.object_store(rag_home)
    put_source(store, KEY, TEXT, SourceMetadata(acl=["finance"]))
    published: list[DocumentChange] = []
    [first] = sync_object_store(store, published.extend)
    put_source(store, KEY, TEXT, SourceMetadata(acl=["staff"]))
    [second] = sync_object_store(store, published.extend)
    assert sync_object_store(store, published.extend) == []
    assert second.version == first.version
    assert second.idempotency_key != first.idempotency_key
