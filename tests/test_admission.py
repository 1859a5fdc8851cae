"""Admission control: past the in-flight limit (and the wait queue) requests get 503 with
Retry-After at once, while probes and /metrics still answer."""

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from rag_core.settings import Settings
from rag_serving.admission import Slots
from rag_serving.main import create_app


class Blocker:
    """A route that holds its request until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self) -> dict[str, str]:
        self.entered.set()
        self.release.wait(30)
        return {"status": "released"}


@pytest.fixture
def blocker() -> Blocker:
    return Blocker()


@pytest.fixture
def one_slot(sample_index: Settings, blocker: Blocker) -> Iterator[TestClient]:
    settings = sample_index.model_copy(update={"max_in_flight": 1, "max_queued": 0})
    app = create_app(settings)
    app.add_api_route("/v1/test/hold", blocker.hold)
    with TestClient(app) as client:
        yield client


def refused_so_far() -> float:
    return REGISTRY.get_sample_value("rag_admission_refused_total") or 0.0


def test_past_the_limit_requests_get_503_with_retry_after_and_probes_still_answer(
    one_slot: TestClient, blocker: Blocker
) -> None:
    held: list[httpx.Response] = []
    holder = threading.Thread(target=lambda: held.append(one_slot.get("/v1/test/hold")))
    holder.start()
    assert blocker.entered.wait(30)
    refused_before = refused_so_far()
    try:
        refused = one_slot.post("/v1/search", json={"query": "vacuum"})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["detail"] == "the server is at capacity; retry later"
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        assert refused_so_far() == refused_before + 1
        assert one_slot.get("/healthz").status_code == 200
        assert one_slot.get("/metrics").status_code == 200
        for probe in ("/livez", "/readyz"):  # whether or not the app has them yet
            assert one_slot.get(probe).status_code != 503
    finally:
        blocker.release.set()
        holder.join(30)
    assert held[0].status_code == 200
    assert one_slot.post("/v1/search", json={"query": "vacuum"}).status_code == 200


def test_without_a_limit_nothing_is_refused(sample_index: Settings, blocker: Blocker) -> None:
    app = create_app(sample_index.model_copy(update={"max_in_flight": 0}))
    app.add_api_route("/v1/test/hold", blocker.hold)
    with TestClient(app) as client:
        holder = threading.Thread(target=lambda: client.get("/v1/test/hold"))
        holder.start()
        assert blocker.entered.wait(30)
        try:
            assert client.post("/v1/search", json={"query": "vacuum"}).status_code == 200
        finally:
            blocker.release.set()
            holder.join(30)


def test_waiters_get_freed_slots_in_turn_and_a_full_line_is_refused_at_once() -> None:
    async def scenario() -> None:
        slots = Slots(limit=1, queue=1)
        assert await slots.take(timeout=1)
        waiter = asyncio.create_task(slots.take(timeout=10))
        await asyncio.sleep(0)  # the waiter is now in line
        assert await slots.take(timeout=10) is False  # the line is full: no wait
        slots.give_back()
        assert await waiter  # the freed slot went to the waiter
        assert await slots.take(timeout=0.01) is False  # waited, timed out
        slots.give_back()
        assert slots.taken == 0

    asyncio.run(scenario())


def test_a_waiter_that_leaves_does_not_keep_a_slot() -> None:
    async def scenario() -> None:
        slots = Slots(limit=1, queue=1)
        assert await slots.take(timeout=1)
        waiter = asyncio.create_task(slots.take(timeout=10))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        slots.give_back()
        assert slots.taken == 0
        assert await slots.take(timeout=0.01)

    asyncio.run(scenario())
