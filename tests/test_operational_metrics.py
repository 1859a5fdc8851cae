"""The operational metrics dashboards and alerts are built on, read where Prometheus reads
them: the streaming worker's `/metrics` on the real broker (tansu) while events flow, and the
API's `/metrics` after real queries, a fallback from an unreachable model and an erasure."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from test_erasure import SUBJECT, index_with_badges
from test_stream_hostile import BLUE, running, wait_for

from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.adapters.kafka import EventPublisher
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.processes import free_port
from rag_core.domain.events import document_change, topics
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope
from rag_core.flows.orchestration import orchestrator_for
from rag_core.flows.streaming import LAG_REFRESH_SECONDS, StreamingIndexer, serve_probes
from rag_core.settings import Settings, get_settings
from rag_core.telemetry import INDEX_CHECK_PASSED, STREAM_CONSUMER_LAG
from rag_serving.main import create_app

from conftest import (
    HOSTILE_KEYS,
    PARKING,
    announce,
    assert_dead_lettered_for_their_keys,
)

# Questions no other test asks: an answer another test cached would not be generated again.
STREAMED_QUESTION = "On which port does the PostgreSQL server listen, streamed to me?"
INDEX_CHECKS = ("freshness_lag", "vector_dimension", "no_empty_chunks", "rows_match_live_chunks")


class Scrape:
    """One Prometheus text exposition, its samples looked up by name and labels."""

    def __init__(self, text: str):
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))


def before(name: str, **labels: str) -> float:
    """A sample of this process's default registry, 0 when absent: counters are shared by
    the tests of a session, so each test asserts what its own work added."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def probed_worker(settings: Settings) -> Iterator[tuple[StreamingIndexer, httpx.Client]]:
    """The worker as `ragctl stream` runs it (the orchestrator's recorder, with the index
    checks), its probes and metrics served on a free port."""
    recorder = orchestrator_for(settings).streaming_recorder()
    port = free_port()
    with StreamingIndexer(settings, recorder) as worker:
        server = serve_probes(worker.health, port)
        try:
            yield worker, httpx.Client(base_url=f"http://127.0.0.1:{port}")
        finally:
            server.shutdown()


def test_the_worker_exports_events_lag_batches_dead_letters_and_checks(
    kafka_platform: Settings,
) -> None:
    settings = kafka_platform
    documents = topics(settings).documents
    # Gauges of workers earlier in the session would otherwise stand in for this one's.
    INDEX_CHECK_PASSED.clear()
    STREAM_CONSUMER_LAG.clear()
    applied = before("rag_stream_events_total", topic=documents, outcome="applied")
    dead = before("rag_stream_events_total", topic=documents, outcome="dead_letter")
    letters = before("rag_dead_letters_total", topic=documents)
    batches = before("rag_stream_batch_duration_seconds_count")
    started = time.time()
    put_source(services.object_store(settings), PARKING, BLUE)
    with probed_worker(settings) as (worker, probe), running(worker):
        EventPublisher(settings).document_changes(
            document_change("upsert", key, "v1", "forged") for key in HOSTILE_KEYS
        )
        announce(settings)
        index = services.chunk_index(settings)
        wait_for(lambda: index.stats().documents == 1, "the good event is indexed")

        def settled() -> bool:
            """Caught up (lag 0 on the topic) and the index checks evaluated, when idle."""
            scrape = Scrape(probe.get("/metrics").text)
            lag = scrape("rag_stream_consumer_lag", topic=documents, partition="0")
            checked = all(scrape("rag_index_check_passed", check=c) for c in INDEX_CHECKS)
            return lag == 0 and checked

        wait_for(settled, "the worker catches up and checks the index", timeout=30)
        scrape = Scrape(probe.get("/metrics").text)

    assert scrape("rag_stream_events_total", topic=documents, outcome="applied") == applied + 1
    assert scrape("rag_stream_events_total", topic=documents, outcome="dead_letter") == dead + 3
    assert scrape("rag_dead_letters_total", topic=documents) == letters + 3
    assert_dead_lettered_for_their_keys(settings)
    batch_count = scrape("rag_stream_batch_duration_seconds_count")
    assert batch_count is not None and batch_count > batches
    # Both subscribed topics show, the one without events too.
    assert scrape("rag_stream_consumer_lag", topic=topics(settings).tables, partition="0") == 0
    assert {check: scrape("rag_index_check_passed", check=check) for check in INDEX_CHECKS} == (
        dict.fromkeys(INDEX_CHECKS, 1.0)
    )
    last_write = scrape("rag_index_last_write_timestamp_seconds")
    assert last_write is not None and started <= last_write <= time.time()


def test_the_lag_counts_events_published_but_not_yet_consumed(
    kafka_platform: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six events wait and the worker takes two a batch: after its second batch the lag
    counts those still waiting, and none once the worker is idle."""
    monkeypatch.setenv("RAG_STREAM_BATCH_SIZE", "2")
    get_settings.cache_clear()
    settings = get_settings()
    documents = topics(settings).documents
    STREAM_CONSUMER_LAG.clear()
    store = services.object_store(settings)
    for n in range(6):
        put_source(
            store, f"documents/notes/note-{n}.md", f"# Note {n}\n\nNote number {n}.".encode()
        )
    announce(settings)

    def lag() -> float | None:
        scrape = Scrape(probe.get("/metrics").text)
        return scrape("rag_stream_consumer_lag", topic=documents, partition="0")

    with probed_worker(settings) as (worker, probe):
        handled = 0
        while handled == 0:  # joining the group first
            outcome = worker.poll_once(timeout=1.0)
            handled += outcome.events if outcome else 0
        time.sleep(LAG_REFRESH_SECONDS)  # the lag was last measured before the group was joined
        outcome = worker.poll_once(timeout=1.0)
        assert outcome is not None
        handled += outcome.events
        assert handled < 6
        assert lag() == 6 - handled > 0

        while outcome is not None:
            outcome = worker.poll_once(timeout=1.0)
        time.sleep(LAG_REFRESH_SECONDS)
        worker.poll_once(timeout=0.1)
        assert lag() == 0
    assert services.chunk_index(settings).stats().documents == 6


@pytest.fixture(scope="module")
def api(sample_index: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sample_index)) as client:
        yield client


def api_scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200
    return Scrape(response.text)


def test_the_api_counts_queries_answers_and_times_the_first_token(api: TestClient) -> None:
    question = {"question": "Which pip option installs from a local folder of archives?"}
    cached = before("rag_queries_total", cached="true")
    uncached = before("rag_queries_total", cached="false")
    extractive = before("rag_answers_total", generator="extractive")
    first_tokens = before("rag_llm_time_to_first_token_seconds_count", model="extractive")

    first = api.post("/v1/query", json=question).json()
    again = api.post("/v1/query", json=question).json()
    streamed = api.post("/v1/query", json={"question": STREAMED_QUESTION, "stream": True})

    assert (first["cached"], again["cached"], first["generator"]) == (False, True, "extractive")
    assert streamed.status_code == 200 and "event: done" in streamed.text
    scrape = api_scrape(api)
    assert scrape("rag_queries_total", cached="true") == cached + 1
    assert scrape("rag_queries_total", cached="false") == uncached + 2
    assert scrape("rag_answers_total", generator="extractive") == extractive + 2
    count = scrape("rag_llm_time_to_first_token_seconds_count", model="extractive")
    assert count == first_tokens + 1
    assert scrape("rag_llm_time_to_first_token_seconds_bucket", model="extractive", le="+Inf")
    assert (scrape("rag_llm_time_to_first_token_seconds_sum", model="extractive") or 0) > 0


def test_an_unreachable_model_counts_a_fallback_to_extractive(sample_index: Settings) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}/v1"
    settings = sample_index.model_copy(update={"llm_base_url": nothing_listens})
    fallbacks = before("rag_llm_fallbacks_total", reason="unreachable")
    extractive = before("rag_answers_total", generator="extractive")
    # A question of its own: an answer cached by another test would not reach the model.
    question = {"question": "Which port does the server listen on when the model is away?"}
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/query", json=question).json()
        streamed = client.post("/v1/query", json=question | {"stream": True})
        scrape = api_scrape(client)
    assert answer["generator"] == "extractive" and answer["citations"]
    assert streamed.status_code == 200 and '"cached":true' in streamed.text
    assert scrape("rag_llm_fallbacks_total", reason="unreachable") == fallbacks + 1
    assert scrape("rag_answers_total", generator="extractive") == extractive + 1


def test_erasure_gauges_come_from_the_stores(rag_home: Settings) -> None:
    index_with_badges(rag_home)
    store = services.object_store(rag_home)
    waiting = erasure.submit(store, ErasureScope(doc_ids=["not-carried-out"]), "ops")
    with TestClient(create_app(rag_home)) as client:
        accepted = client.post("/v1/erasure-requests", json={"subject": SUBJECT})
        assert accepted.status_code == 202
        done = client.get(f"/v1/erasure-requests/{accepted.json()['request_id']}").json()
        assert done["status"] == "completed"
        scrape = api_scrape(client)
    states = ("pending", "running", "completed", "failed")  # the store's, all shown
    assert {state: scrape("rag_erasure_requests", state=state) for state in states} == {
        "pending": 1, "running": 0, "completed": 1, "failed": 0,
    }  # fmt: skip
    age = scrape("rag_erasure_oldest_open_age_seconds")
    assert age is not None and 0 < age <= time.time() - waiting.requested_at.timestamp()
    duration = scrape("rag_erasure_last_duration_seconds")
    assert duration is not None and duration > 0
    assert scrape("rag_audit_chain_length") == 1


@pytest.mark.slow
def test_the_packaged_model_streams_with_its_time_to_first_token(
    sample_index: Settings, local_llm: LocalLLMServer
) -> None:
    # A few tokens are enough to time the first: the whole answer takes minutes on a laptop.
    update = {"llm_base_url": local_llm.base_url, "llm_max_tokens": 24}
    settings = sample_index.model_copy(update=update)
    model = settings.llm_model
    first_tokens = before("rag_llm_time_to_first_token_seconds_count", model=model)
    answers = before("rag_answers_total", generator=model)
    question = {"question": "How does pip authenticate to a private index?", "stream": True}
    with TestClient(create_app(settings)) as client:
        streamed = client.post("/v1/query", json=question)
        scrape = api_scrape(client)
    assert streamed.status_code == 200 and streamed.text.count("event: token") > 1
    assert scrape("rag_llm_time_to_first_token_seconds_count", model=model) == first_tokens + 1
    assert scrape("rag_answers_total", generator=model) == answers + 1
