"""The streaming worker on the real broker (tansu) and S3 (SeaweedFS): changes in the object
store reach answers, replays and stale events change nothing, bad events are parked."""

import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from rag_assets.documents import PARTITIONS_NAME
from rag_assets.ingest import local_instance
from rag_assets.streaming import InstanceRecorder
from rag_core import services
from rag_core.adapters.catalog import delete_source, known_versions, put_source
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.local_servers import SeaweedS3, TansuBroker
from rag_core.adapters.processes import free_port
from rag_core.adapters.warehouse.connection import connect
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.events import table_row_change, topics
from rag_core.domain.ids import doc_id_for, partition_key
from rag_core.domain.schemas import QueryRequest
from rag_core.flows import streaming
from rag_core.flows.streaming import StreamingIndexer
from rag_core.settings import Settings
from rag_core.sources import warehouse
from rag_core.sources.warehouse_sample import load_sample

from conftest import announce, process, read_dead_letters

PARKING = "documents/handbook/parking.md"
BLUE = b"# Parking\n\nVisitors park in the blue garage on level three, next to the lifts."
RED = b"# Parking\n\nVisitors now park in the red garage by the north gate."
QUESTION = "Where do visitors park?"


def lag_histogram(op: str) -> tuple[float, float]:
    """Observations and their sum in the worker's freshness-lag metric."""
    labels = {"op": op}
    count = REGISTRY.get_sample_value("rag_freshness_lag_seconds_count", labels) or 0.0
    return count, REGISTRY.get_sample_value("rag_freshness_lag_seconds_sum", labels) or 0.0


def texts_for(settings: Settings, doc_id: str) -> list[str]:
    hits = services.retriever(settings).search(QUESTION, 5)
    return [hit.text for hit in hits if hit.doc_id == doc_id]


@pytest.mark.slow
def test_object_changes_reach_answers_through_kafka(s3_platform: Settings) -> None:
    settings = s3_platform
    store = services.object_store(settings)
    instance = local_instance(settings)
    doc_id = doc_id_for(store.uri_for(PARKING))
    with StreamingIndexer(settings, InstanceRecorder(instance, 60.0)) as worker:
        put_source(store, PARKING, BLUE, SourceMetadata(acl=["staff"]))
        [first_event] = announce(settings)
        upserts_before, lag_before = lag_histogram("upsert")
        [added] = process(worker)
        assert [m.doc_id for m in added.indexed] == [doc_id]
        assert added.freshness and added.freshness[0].lag_seconds < 60
        upserts, lag = lag_histogram("upsert")
        assert upserts == upserts_before + 1
        assert lag - lag_before == pytest.approx(added.freshness[0].lag_seconds)
        answer = services.query_service(settings).query(QueryRequest(question=QUESTION))
        assert "blue garage" in answer.answer
        assert any(c.source_uri.endswith("parking.md") for c in answer.citations)
        first_key = added.indexed[0].partition_key
        assert first_key in instance.get_materialized_partitions(dg.AssetKey("index"))

        put_source(store, PARKING, RED, SourceMetadata(acl=["staff"]))
        announce(settings)
        [updated] = process(worker)
        assert updated.retired == [(doc_id, added.indexed[0].version)]
        texts = texts_for(settings, doc_id)
        assert texts and all("red garage" in t and "blue" not in t for t in texts)
        answer = services.query_service(settings).query(QueryRequest(question=QUESTION))
        assert "red garage" in answer.answer and "blue" not in answer.answer
        assert instance.get_dynamic_partitions(PARTITIONS_NAME) == [
            updated.indexed[0].partition_key
        ]

        # The stale event of the first version, delivered again, does not bring it back.
        version_before = services.chunk_index(settings).table_version()
        EventPublisher(settings).document_changes([first_event])
        [stale] = process(worker)
        assert stale.indexed == [] and stale.retired == []
        assert services.chunk_index(settings).table_version() == version_before

        # Replaying the whole topic from offset zero in a new group changes no row.
        with StreamingIndexer(settings, group_id="replay-from-zero") as replay:
            outcomes = process(replay)
        assert sum(o.events for o in outcomes) == 3
        assert all(o.indexed == [] and o.retired == [] for o in outcomes)
        assert services.chunk_index(settings).table_version() == version_before

        delete_source(store, PARKING)
        announce(settings)
        deletes_before, _ = lag_histogram("delete")
        [deleted] = process(worker)
        assert lag_histogram("delete")[0] == deletes_before + 1
        assert {pair[0] for pair in deleted.retired} == {doc_id}
        assert texts_for(settings, doc_id) == []
        assert known_versions(store, doc_id) == []
        assert instance.get_dynamic_partitions(PARTITIONS_NAME) == []


def test_unprocessable_events_go_to_the_dead_letter_topic(
    kafka_platform: Settings, broker: TansuBroker
) -> None:
    settings = kafka_platform
    store = services.object_store(settings)
    with StreamingIndexer(settings) as worker:
        names = topics(settings)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        producer.produce(names.documents, key=b"x", value=b"{not json")
        producer.produce(names.documents, value=b'{"op": "upsert", "source_key": "/etc/passwd"}')
        producer.flush()
        # A valid row event, but there is no warehouse here: retrying would never help.
        EventPublisher(settings).row_changes(
            [table_row_change("upsert", "support_ticket_documents", "TCK-1", "r1", "w")]
        )
        put_source(store, PARKING, BLUE)
        announce(settings)
        outcomes = process(worker)
        assert sum(o.dead_letters for o in outcomes) == 3
        assert sum(len(o.indexed) for o in outcomes) == 1  # the stream went on

        letters = sorted(read_dead_letters(settings, 3), key=lambda lt: (lt.topic, lt.offset))
        assert [letter.topic for letter in letters] == [names.documents] * 2 + [names.tables]
        assert "not JSON" in letters[0].reason and letters[0].value == "{not json"
        assert "idempotency_key" in letters[1].reason
        assert "no warehouse" in letters[2].reason
        assert len({letter.idempotency_key for letter in letters}) == 3


@pytest.mark.slow
def test_a_broker_restart_mid_stream_loses_no_event(
    rag_home: Settings, seaweed: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Topics and committed offsets live in S3 (tansu's s3 storage engine): events produced
    before the restart and consumed after it are all indexed."""
    seaweed.credentials.create_bucket("tansu-restart")
    port = free_port()

    def start_broker() -> TansuBroker:
        return TansuBroker(
            port, storage="s3://tansu-restart/", s3=seaweed.credentials,
            log_path=tmp_path / "tansu.log",
        ).start()  # fmt: skip

    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    monkeypatch.setenv("RAG_STREAM_BATCH_SIZE", "1")  # so the stream is cut between events
    settings = Settings()
    store = services.object_store(settings)
    broker = start_broker()
    try:
        before = [f"documents/before-{n}.md" for n in range(3)]
        with StreamingIndexer(settings) as worker:
            for number, key in enumerate(before):
                put_source(store, key, BLUE + f" Bay {number}.".encode())
            assert len(announce(settings)) == 3
            first = worker.poll_once(timeout=30.0)
            assert first is not None and len(first.indexed) == 1

            broker.stop()
            broker = start_broker()
            put_source(store, "documents/after.md", RED)
            announce(settings)
            rest = [m.source_key for o in process(worker) for m in o.indexed]
            assert sorted(rest) == sorted([*before[1:], "documents/after.md"])

        # The worker may have had the rest prefetched; a new group reading from offset zero
        # shows the broker itself kept every event produced before the restart.
        with StreamingIndexer(settings, group_id="replay-after-restart") as replay:
            assert sum(o.events for o in process(replay)) == 4

        # A restarted worker resumes after the committed offsets: nothing is redelivered.
        with StreamingIndexer(settings) as restarted:
            assert restarted.poll_once(timeout=8.0) is None
        assert services.chunk_index(settings).stats().documents == 4
    finally:
        broker.stop()


RATE_LIMIT = "What is the API rate limit per access token?"


@pytest.mark.slow
def test_a_warehouse_row_update_reaches_answers_through_kafka(s3_platform: Settings) -> None:
    settings = s3_platform
    load_sample(settings)
    build_models(settings)
    publisher = EventPublisher(settings)
    ticket = warehouse.document_key("support_ticket_documents", "TCK-1003")
    doc_id = doc_id_for(services.object_store(settings).uri_for(ticket))
    instance = local_instance(settings)
    with StreamingIndexer(settings, InstanceRecorder(instance, 60.0)) as worker:
        assert len(warehouse.announce_changes(settings, publisher.row_changes)) == 12
        assert sum(len(o.indexed) for o in process(worker)) == 12
        answer = services.query_service(settings).query(QueryRequest(question=RATE_LIMIT))
        assert "600 requests per minute" in answer.answer
        assert any(c.doc_id == doc_id for c in answer.citations)

        with connect(settings) as connection:
            connection.cursor().execute(
                "UPDATE raw.support_tickets SET resolution = replace(resolution, "
                "'600 requests per minute', '900 requests per minute') WHERE ticket_id = ?",
                ["TCK-1003"],
            )
        build_models(settings)
        [change] = warehouse.announce_changes(settings, publisher.row_changes)
        assert change.op == "upsert" and change.row_key == "TCK-1003"
        [updated] = process(worker)
        assert [m.doc_id for m in updated.indexed] == [doc_id] and len(updated.retired) == 1
        # Dagster holds the new version's partition, materialized, and not the old one's.
        new_key = updated.indexed[0].partition_key
        assert new_key in instance.get_materialized_partitions(dg.AssetKey("index"))
        assert partition_key(*updated.retired[0]) not in instance.get_dynamic_partitions(
            PARTITIONS_NAME
        )
        answer = services.query_service(settings).query(QueryRequest(question=RATE_LIMIT))
        assert "900 requests per minute" in answer.answer and "600" not in answer.answer

        with connect(settings) as connection:
            connection.cursor().execute(
                "DELETE FROM raw.support_tickets WHERE ticket_id = ?", ["TCK-1003"]
            )
        build_models(settings)
        [deletion] = warehouse.announce_changes(settings, publisher.row_changes)
        assert deletion.op == "delete"
        process(worker)
        hits = services.retriever(settings).search(RATE_LIMIT, 10)
        assert hits and all(hit.doc_id != doc_id for hit in hits)


def test_a_failed_batch_is_retried_from_the_committed_offset(
    kafka_platform: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = kafka_platform
    attempts: list[int] = []
    build = streaming.build_versions

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("the object store is unreachable")
        return build(*args, **kwargs)

    monkeypatch.setattr(streaming, "build_versions", fails_once)
    monkeypatch.setattr(streaming, "RETRY_SECONDS", 0.1)
    stop = threading.Event()
    with StreamingIndexer(settings) as worker:
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            put_source(services.object_store(settings), PARKING, BLUE)
            announce(settings)
            deadline = time.monotonic() + 60
            while not services.chunk_index(settings).stats().documents:
                assert time.monotonic() < deadline, "the failed batch was not retried"
                time.sleep(0.2)
        finally:
            stop.set()
            thread.join()
    assert len(attempts) == 2
