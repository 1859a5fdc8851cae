"""Hostile events on the real broker (tansu): keys that escape `documents/`, a huge binary
payload, a version the worker does not know, an event that always fails, a dead-letter topic
that refuses letters; and the worker's health probes while it happens."""

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaException, Producer
from prometheus_client import REGISTRY

from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.local_servers import TansuBroker
from rag_core.adapters.processes import free_port
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.events import document_change, encode, topics
from rag_core.domain.ids import doc_id_for
from rag_core.domain.layout import Artifact
from rag_core.flows import streaming
from rag_core.flows.streaming import StreamingIndexer, serve_probes
from rag_core.settings import Settings, get_settings

from conftest import (
    HOSTILE_KEYS,
    PARKING,
    announce,
    assert_dead_lettered_for_their_keys,
    plant_outside_the_store,
    process,
    read_dead_letters,
)

BLUE = b"# Parking\n\nVisitors park in the blue garage on level three, next to the lifts."
SECRET = b"The vault code is 4471, said the planted file."


def doc_ids_under(settings: Settings, prefix: Artifact) -> set[str]:
    return {obj.key.split("/")[1] for obj in services.object_store(settings).list(prefix)}


def test_events_naming_no_source_are_dead_lettered_and_never_read(
    kafka_platform: Settings,
) -> None:
    settings = kafka_platform
    store = services.object_store(settings)
    planted = plant_outside_the_store(settings, SECRET)
    put_source(store, PARKING, BLUE, SourceMetadata(acl=["staff"]))
    with StreamingIndexer(settings) as worker:
        EventPublisher(settings).document_changes(
            document_change("upsert", key, "v1", "forged") for key in HOSTILE_KEYS
        )
        announce(settings)
        outcomes = process(worker)
    assert sum(o.dead_letters for o in outcomes) == 3
    parking = doc_id_for(store.uri_for(PARKING))
    assert [m.doc_id for o in outcomes for m in o.indexed] == [parking]
    # Nothing of the planted file was read, copied, described or indexed.
    for prefix in (Artifact.RAW, Artifact.MANIFEST, Artifact.CHUNKS):
        assert doc_ids_under(settings, prefix) == {parking}, prefix
    assert services.chunk_index(settings).stats().documents == 1
    hits = services.retriever(settings).search("vault code 4471", 5)
    assert all("4471" not in hit.text for hit in hits)
    assert planted.read_bytes() == SECRET

    reasons = assert_dead_lettered_for_their_keys(settings)
    assert all(reason.startswith("not a document source key") for reason in reasons.values())


def test_a_huge_binary_event_is_dead_lettered_and_the_stream_goes_on(
    kafka_platform: Settings, broker: TansuBroker
) -> None:
    """Its letter once grew to 2.7 MB, the broker refused it, and the batch was retried for
    good: nothing after it was indexed."""
    settings = kafka_platform
    payload = random.Random(11).randbytes(900_000)
    with StreamingIndexer(settings) as worker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        producer.produce(topics(settings).documents, key=b"blob", value=payload)
        assert producer.flush(30) == 0
        put_source(services.object_store(settings), PARKING, BLUE)
        announce(settings)
        outcomes = process(worker)
    assert sum(o.dead_letters for o in outcomes) == 1
    assert [m.source_key for o in outcomes for m in o.indexed] == [PARKING]
    [letter] = read_dead_letters(settings, 1)
    assert (letter.topic, letter.partition, letter.offset) == (topics(settings).documents, 0, 0)
    assert letter.value_truncated and letter.value_size == len(payload)
    assert letter.value_sha256 == hashlib.sha256(payload).hexdigest()
    assert payload.decode(errors="replace").startswith(letter.value)
    assert "not JSON" in letter.reason


def test_an_unknown_schema_version_is_dead_lettered_not_read_as_version_1(
    kafka_platform: Settings, broker: TansuBroker
) -> None:
    settings = kafka_platform
    put_source(services.object_store(settings), PARKING, BLUE)
    future = encode(document_change("upsert", PARKING, "v1", "future"))
    future = future.replace(b'"schema_version":1', b'"schema_version":99')
    assert b'"schema_version":99' in future
    with StreamingIndexer(settings) as worker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        producer.produce(topics(settings).documents, key=PARKING.encode(), value=future)
        assert producer.flush(30) == 0
        outcomes = process(worker)
    assert sum(o.dead_letters for o in outcomes) == 1
    assert not any(o.indexed for o in outcomes)
    [letter] = read_dead_letters(settings, 1)
    assert "unknown schema_version 99" in letter.reason and letter.value == future.decode()


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


@contextmanager
def running(worker: StreamingIndexer) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def impatient(kafka_platform: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Two failed attempts make a batch stuck, and retries come quickly."""
    monkeypatch.setenv("RAG_STREAM_MAX_ATTEMPTS", "2")
    monkeypatch.setattr(streaming, "RETRY_SECONDS", 0.05)
    get_settings.cache_clear()
    return get_settings()


POISON = "documents/poison.md"


def test_an_event_that_always_fails_is_dead_lettered_alone_after_the_attempts(
    impatient: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = impatient
    store = services.object_store(settings)
    build = streaming.build_versions

    def fails_on_poison(*args: Any, **kwargs: Any) -> Any:
        if any(version.source_key == POISON for version in args[4]):
            raise RuntimeError("the parser crashes on this file")
        return build(*args, **kwargs)

    monkeypatch.setattr(streaming, "build_versions", fails_on_poison)
    put_source(store, POISON, b"# Poison\n\nThis one never goes through.")
    put_source(store, PARKING, BLUE)
    with StreamingIndexer(settings) as worker, running(worker):
        announce(settings)  # both in one batch, which fails as a whole
        index = services.chunk_index(settings)
        wait_for(lambda: index.stats().documents == 1, "the good event is indexed")
        [letter] = read_dead_letters(settings, 1)
        assert letter.key == POISON
        assert "failed 2 times in a row, then alone" in letter.reason
        assert "the parser crashes on this file" in letter.reason
        wait_for(lambda: worker.health.ready, "the worker is ready again")
        assert metric("rag_stream_failed_attempts") == 0

        put_source(store, "documents/later.md", b"# Later\n\nA later change goes through.")
        announce(settings)
        wait_for(lambda: index.stats().documents == 2, "a later event is indexed")


def test_events_dead_lettered_during_an_outage_are_indexed_once_it_ends(
    impatient: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object store down for longer than the attempts take fails every event alone too:
    they are dead-lettered, and the catch-up once the stream is idle indexes them anyway."""
    settings = impatient
    store = services.object_store(settings)
    build = streaming.build_versions
    outage = threading.Event()
    outage.set()

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        if outage.is_set():
            raise OSError("the object store is unreachable")
        return build(*args, **kwargs)

    monkeypatch.setattr(streaming, "build_versions", unreachable)
    monkeypatch.setattr(streaming, "CATCH_UP_RETRY_SECONDS", 0.2)
    put_source(store, PARKING, BLUE)
    with StreamingIndexer(settings) as worker, running(worker):
        announce(settings)
        [letter] = read_dead_letters(settings, 1)
        assert "the object store is unreachable" in letter.reason
        outage.clear()
        index = services.chunk_index(settings)
        wait_for(lambda: index.stats().documents == 1, "the dead-lettered change is indexed")


def test_a_dead_letter_topic_that_refuses_letters_shows_in_the_probes(
    impatient: Settings, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = impatient
    refusals_before = metric("rag_stream_dead_letter_failures_total")
    port = free_port()
    with StreamingIndexer(settings) as worker:
        server = serve_probes(worker.health, port)
        probe = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        assert probe.get("/readyz").status_code == 503  # not consuming yet
        real_dead_letter = worker.publisher.dead_letter

        def refused(*args: Any) -> None:
            raise KafkaException("1 of 1 events not delivered: MSG_SIZE_TOO_LARGE")

        monkeypatch.setattr(worker.publisher, "dead_letter", refused)
        with running(worker):
            wait_for(lambda: worker.health.consuming, "the worker consumes")
            assert probe.get("/readyz").status_code == 200
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
            producer.produce(topics(settings).documents, value=b"{not json")
            producer.flush(30)
            wait_for(lambda: worker.health.stalled, "the worker reports itself stalled")
            ready = probe.get("/readyz")
            assert ready.status_code == 503
            report = ready.json()
            assert report["stalled"] and report["failed_attempts"] > 2
            assert "dead letter not accepted" in report["last_error"]
            assert probe.get("/healthz").status_code == 200
            metrics = probe.get("/metrics").text
            assert "rag_stream_failed_attempts" in metrics
            assert "rag_stream_last_progress_timestamp_seconds" in metrics
            assert metric("rag_stream_dead_letter_failures_total") > refusals_before

            # The topic takes letters again: the event is parked, the stream goes on.
            monkeypatch.setattr(worker.publisher, "dead_letter", real_dead_letter)
            put_source(services.object_store(settings), PARKING, BLUE)
            announce(settings)
            index = services.chunk_index(settings)
            wait_for(lambda: index.stats().documents == 1, "the later event is indexed")
            wait_for(lambda: probe.get("/readyz").status_code == 200, "ready again")
        [letter] = read_dead_letters(settings, 1)
        assert "not JSON" in letter.reason
        server.shutdown()
