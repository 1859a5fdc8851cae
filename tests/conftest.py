import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Consumer group joins on tansu wait about half the session timeout: 2 s instead of 5 s.
os.environ.setdefault("RAG_KAFKA_SESSION_TIMEOUT_MS", "3000")

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from routes.conftest import Issuer

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.adapters.catalog import add_sources
from rag_core.adapters.kafka import EventPublisher, consumer_config
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import assemble_local_model
from rag_core.adapters.local_servers import SeaweedS3, TansuBroker
from rag_core.adapters.processes import free_port
from rag_core.adapters.warehouse.dbt import build_models
from rag_core.domain.documents import MAX_SEGMENT_BYTES
from rag_core.domain.events import DeadLetter, DocumentChange, decode, topics
from rag_core.flows.streaming import BatchOutcome, StreamingIndexer
from rag_core.flows.sync import sync_object_store
from rag_core.settings import Settings, get_settings
from rag_core.sources import warehouse
from rag_core.sources.warehouse_sample import load_sample

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "sample_corpus"
PRODUCTION_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
PORT_QUESTION = "Which port does the server listen on?"
PORT_DOCUMENT = "postgresql/runtime-config-connection.html"
REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    """Skip without the Redis server every machine here runs; never on CI, where it must be."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("no Redis server on 127.0.0.1:6379")


@pytest.fixture
def rag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """An empty platform under a temporary RAG_HOME, also seen by code reading the env."""
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "rag"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def ingest(settings: Settings, *paths: Path) -> list[str]:
    """Copy paths into the store and index them in one run; returns new partition keys."""
    keys = add_sources(services.object_store(settings), paths)
    return ingest_sources(settings, local_instance(settings), keys)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The sample corpus, indexed once for the whole session; tests must not modify it."""
    settings = Settings(home=tmp_path_factory.mktemp("sample") / "rag")
    ingest(settings, SAMPLE_CORPUS)
    return settings


@pytest.fixture(scope="session")
def sample_and_warehouse_index(
    sample_index: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The sample corpus and the sample warehouse's tickets (loaded, built by dbt, rendered
    into documents), indexed once for the whole session on a copy of `sample_index`: what
    eval_sets/sample_corpus_qa.jsonl is labeled over. Tests must not modify it."""
    settings = Settings(home=tmp_path_factory.mktemp("sample_and_warehouse") / "rag")
    shutil.copytree(
        sample_index.home,
        settings.home,
        ignore=shutil.ignore_patterns("cache", "evaluation.duckdb*"),
    )
    load_sample(settings)
    build_models(settings)
    keys = warehouse.sync_documents(services.object_store(settings), settings)
    ingest_sources(settings, local_instance(settings), keys)
    return settings


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLMServer]:
    """The packaged local model, served once for the session's slow tests."""
    model = assemble_local_model(tmp_path_factory.mktemp("local_llm") / "models")
    with LocalLLMServer(model, free_port()) as server:
        yield server


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of a few sample documents, for tests that change files."""
    target = tmp_path / "corpus"
    (target / "pip").mkdir(parents=True)
    for name in ("pip/getting-started.md", "pip/authentication.md", "mosquitto-readme.md"):
        shutil.copy(SAMPLE_CORPUS / name, target / name)
    return target


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS serving S3 on loopback for the whole session."""
    data = tmp_path_factory.mktemp("seaweed")
    with SeaweedS3(data / "data", log_path=data / "weed.log") as server:
        yield server


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A tansu broker with memory storage, fresh for each test."""
    with TansuBroker(log_path=tmp_path / "tansu.log") as server:
        yield server


@pytest.fixture
def kafka_platform(
    rag_home: Settings, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """An embedded platform with its events on the test's broker."""
    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def s3_platform(
    rag_home: Settings, seaweed: SeaweedS3, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """A platform whose object store and index live in a fresh SeaweedFS bucket, with its
    events on the test's broker."""
    bucket = f"rag-{uuid.uuid4().hex[:12]}"
    seaweed.credentials.create_bucket(bucket)
    for name, value in seaweed.credentials.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAG_OBJECT_STORE_URI", f"s3://{bucket}/objects")
    monkeypatch.setenv("RAG_INDEX_URI", f"s3://{bucket}/lancedb")
    monkeypatch.setenv("RAG_S3_ENDPOINT_URL", seaweed.credentials.endpoint_url)
    monkeypatch.setenv("RAG_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    get_settings.cache_clear()
    return get_settings()


def announce(settings: Settings) -> list[DocumentChange]:
    return sync_object_store(
        services.object_store(settings), EventPublisher(settings).document_changes
    )


def process(worker: StreamingIndexer, timeout: float = 60.0) -> list[BatchOutcome]:
    """Poll until at least one batch was handled and the topic is quiet again."""
    outcomes: list[BatchOutcome] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = worker.poll_once(timeout=1.0)
        if outcome is None and outcomes:
            return outcomes
        if outcome is not None:
            outcomes.append(outcome)
    raise AssertionError("the worker handled no events in time")


def read_dead_letters(settings: Settings, count: int, timeout: float = 30.0) -> list[DeadLetter]:
    """The first `count` letters of the dead-letter topic (read without joining a group)."""
    reader = Consumer(consumer_config(settings, "dlq-reader"))
    reader.assign([TopicPartition(topics(settings).dead_letter, 0, OFFSET_BEGINNING)])
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    while len(letters) < count and time.monotonic() < deadline:
        message = reader.poll(1.0)
        if message is not None and not message.error():
            letters.append(decode(DeadLetter, message.value()))
    reader.close()
    return letters


# Keys no event may turn into a source: one leaving the store, the access sidecar of a real
# source, and a segment too long for a file name.
PARKING = "documents/handbook/parking.md"
TRAVERSAL = "documents/../../../outside/secret.txt"
HOSTILE_KEYS = [TRAVERSAL, f"{PARKING}.meta.json", f"documents/{'x' * 300}.md"]


def plant_outside_the_store(settings: Settings, content: bytes) -> Path:
    """Write the file `TRAVERSAL` names, which lies outside the object store's root."""
    root = Path(settings.object_store_uri).resolve()
    planted = (root / TRAVERSAL).resolve()
    assert not planted.is_relative_to(root)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(content)
    return planted


def assert_dead_lettered_for_their_keys(settings: Settings) -> dict[str, str]:
    """Each of `HOSTILE_KEYS` has a dead letter saying why; returns the reasons by key."""
    reasons = {letter.key: letter.reason for letter in read_dead_letters(settings, 3)}
    assert set(reasons) == set(HOSTILE_KEYS)
    assert "segment is empty, . or .." in reasons[TRAVERSAL]
    assert "access sidecar" in reasons[HOSTILE_KEYS[1]]
    assert f"longer than {MAX_SEGMENT_BYTES} bytes" in reasons[HOSTILE_KEYS[2]]
    return reasons


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    """A local OIDC issuer (discovery, keys, signed tokens) for every test that needs one."""
    server = Issuer()
    yield server
    server.stop()
