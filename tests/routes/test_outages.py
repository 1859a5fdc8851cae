"""Redis outages (a URL nothing listens on; a real redis-server killed mid-test and started
again) and the probes: liveness without I/O, readiness per dependency without scanning the
index, both answering while the request thread pool is taken."""

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from rag_core.adapters.dependencies import CircuitBreaker
from rag_core.adapters.index import ChunkIndex
from rag_core.adapters.processes import ChildServer, accepts_connections, free_port
from rag_core.flows.retrieval import Retriever
from rag_core.settings import Settings
from rag_serving.main import create_app

SEARCH = {"query": "vacuum", "top_k": 1}
QUESTION = {"question": "How do I reclaim the space of deleted rows?"}
PROBES = ("/livez", "/healthz", "/readyz")


class RedisServer(ChildServer):
    name = "redis-server"

    def __init__(self, port: int, folder: Path):
        super().__init__(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            log_path=folder / "redis.log",
        )  # fmt: skip
        self.port = port

    def ready(self) -> bool:
        return accepts_connections(self.port)


def with_redis(settings: Settings, port: int, **update: object) -> Settings:
    cache_url = SecretStr(f"redis://127.0.0.1:{port}/0")
    return settings.model_copy(update={"cache_url": cache_url} | update)


def fallbacks(dependency: str) -> float:
    labels = {"dependency": dependency}
    return REGISTRY.get_sample_value("rag_dependency_fallbacks_total", labels) or 0.0


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_an_unreachable_redis_degrades_the_api_instead_of_failing_it(
    sample_index: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_redis(sample_index, free_port(), dependency_retry_seconds=60)
    before = {name: fallbacks(name) for name in ("response_cache", "rate_limiter")}
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        assert client.post("/v1/search", json=SEARCH).status_code == 200
        for _ in range(2):
            answer = client.post("/v1/query", json=QUESTION)
            assert answer.status_code == 200 and answer.json()["cached"] is False
        ready = client.get("/readyz")
        assert ready.status_code == 200
        report = ready.json()
        assert report["status"] == "degraded"
        assert report["dependencies"]["cache"] == {
            "ok": False, "required": False, "detail": "unreachable (ConnectionError)"
        }  # fmt: skip
        assert report["dependencies"]["index"]["ok"] is True
        assert client.get("/livez").status_code == 200
        flush = client.post("/v1/admin/cache/flush")  # erasing cannot do without the cache
        assert flush.status_code == 503 and flush.headers["retry-after"] == "60"
    assert fallbacks("rate_limiter") - before["rate_limiter"] == 4  # one per limited request
    assert fallbacks("response_cache") - before["response_cache"] == 4  # 2 lookups, 2 stores
    outages = [r for r in caplog.records if "unreachable, serving without it" in r.getMessage()]
    assert sorted(r.args[0] for r in outages) == ["rate_limiter", "response_cache"]  # once each


def test_rate_limits_hold_while_redis_is_unreachable(sample_index: Settings) -> None:
    settings = with_redis(sample_index, free_port(), rate_limit_burst=2, rate_limit_per_minute=1)
    with TestClient(create_app(settings)) as client:
        codes = [client.post("/v1/search", json=SEARCH).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_redis_killed_mid_test_is_ridden_out_and_used_again(
    sample_index: Settings, tmp_path: Path
) -> None:
    port = free_port()
    settings = with_redis(sample_index, port, dependency_retry_seconds=0.2)
    redis_server = RedisServer(port, tmp_path).start()
    try:
        with TestClient(create_app(settings)) as client:

            def cached() -> bool:
                answer = client.post("/v1/query", json=QUESTION)
                assert answer.status_code == 200
                return bool(answer.json()["cached"])

            def cache_ok() -> bool:
                return bool(client.get("/readyz").json()["dependencies"]["cache"]["ok"])

            assert [cached(), cached()] == [False, True]
            assert cache_ok()
            redis_server.stop()
            assert [cached(), cached()] == [False, False]
            assert eventually(lambda: not cache_ok())
            assert client.get("/readyz").status_code == 200  # optional: degraded, not down
            redis_server = RedisServer(port, tmp_path).start()  # empty: nothing was saved
            assert eventually(cached)  # stored again, then served, once the breaker retries
            assert eventually(cache_ok)
    finally:
        redis_server.stop()


def test_the_breaker_stops_trying_until_the_retry_interval_passes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("thing", (ConnectionError,), retry_seconds=5, clock=lambda: now[0])
    attempts = []

    def unreachable() -> str:
        attempts.append(now[0])
        raise ConnectionError("refused")

    for now[0] in (0.0, 1.0, 4.9, 5.0, 6.0, 9.9):
        assert breaker.call(unreachable, lambda: "fallback") == "fallback"
    assert attempts == [0.0, 5.0]  # one try, then one retry per interval
    now[0] = 10.0
    assert breaker.call(lambda: "reached", lambda: "fallback") == "reached"
    assert breaker.call(lambda: "reached", lambda: "fallback") == "reached"


def test_probes_do_no_scan_and_liveness_no_io(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("a probe scanned the index")

    for method in ("stats", "live_versions", "_select"):
        monkeypatch.setattr(ChunkIndex, method, scan)
    reads = []
    read_version = ChunkIndex.table_version
    monkeypatch.setattr(
        ChunkIndex, "table_version", lambda self: reads.append(1) or read_version(self)
    )
    with TestClient(create_app(sample_index)) as client:
        started = len(reads)
        for path in ("/livez", "/healthz"):
            assert client.get(path).json() == {"status": "ok"}
        assert len(reads) == started
        reports = [client.get("/readyz") for _ in range(3)]
    assert [report.status_code for report in reports] == [200, 200, 200]
    assert reports[0].json()["status"] == "ready"
    assert reports[0].json()["dependencies"]["index"]["detail"].startswith("table version ")
    assert len(reads) == started + 1  # probes close together share one check


def test_probes_answer_while_the_request_thread_pool_is_taken(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    searching, release = threading.Event(), threading.Event()

    def stuck_search(*args: object, **kwargs: object) -> list[object]:
        searching.set()
        release.wait(30)
        return []

    monkeypatch.setattr(Retriever, "search", stuck_search)
    with TestClient(create_app(sample_index)) as client:
        limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
        tokens = limiter.total_tokens
        client.portal.call(setattr, limiter, "total_tokens", 1)
        busy = threading.Thread(target=client.post, args=("/v1/search",), kwargs={"json": SEARCH})
        busy.start()
        try:
            assert searching.wait(30)
            answered: dict[str, int] = {}
            probing = threading.Thread(
                target=lambda: answered.update({p: client.get(p).status_code for p in PROBES}),
                daemon=True,
            )
            probing.start()
            probing.join(10)
            assert answered == dict.fromkeys(PROBES, 200)
        finally:
            release.set()
            busy.join()
            client.portal.call(setattr, limiter, "total_tokens", tokens)


def test_readiness_is_503_when_the_index_cannot_be_read(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(self: ChunkIndex) -> int:
        raise OSError("the bucket is gone")

    monkeypatch.setattr(ChunkIndex, "table_version", unreadable)
    with TestClient(create_app(sample_index)) as client:
        response = client.get("/readyz")
        assert client.get("/livez").status_code == 200
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "unavailable"
    assert report["dependencies"]["index"] == {
        "ok": False, "required": True, "detail": "unreachable (OSError)"
    }  # fmt: skip
