"""Admission control: bounded in-flight work per API process.

At most `RAG_MAX_IN_FLIGHT` requests are worked on at once; up to `RAG_MAX_QUEUED` more wait
(first come, first served, at most `RAG_QUEUE_WAIT_SECONDS`) for a slot to free up; the rest are
refused at once with 503, `Retry-After` and a JSON body, and counted. Past saturation, extra
concurrent work only makes every request slower (they share the same cores, thread pool and
model), so refusing it keeps throughput flat and latency bounded for the requests admitted.
Probes and `/metrics` are never refused: an overloaded process must still say how it is.

A pure ASGI middleware, so a slot is held until the last byte of the response, streams
included, and a request pays one counter check (no task or memory stream per request, as
`BaseHTTPMiddleware` would add).
"""

import asyncio
from collections import deque
from contextlib import suppress

from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rag_core.settings import Settings
from rag_serving.hardening import SECURITY_HEADERS

NEVER_REFUSED = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
RETRY_AFTER_SECONDS = 1
REFUSED = Counter(
    "rag_admission_refused", "Requests refused with 503 because the process was at capacity."
)
IN_FLIGHT = Gauge("rag_admission_in_flight", "Requests being worked on (admitted, unfinished).")


class Slots:
    """`limit` slots, handed out first come, first served; at most `queue` callers wait.

    Futures are created per wait on the running loop, so no state is bound to one event loop.
    """

    def __init__(self, limit: int, queue: int):
        self.limit, self.queue = limit, queue
        self.taken = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def take(self, timeout: float) -> bool:
        """A slot, now or within `timeout` seconds; False when none (or no place in line)."""
        if self.taken < self.limit and not self._waiting:
            self.taken += 1
            return True
        if len(self._waiting) >= self.queue:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(turn, timeout)
        except TimeoutError:
            pass
        except asyncio.CancelledError:  # the client left while waiting
            if _handed_over(turn):
                self.give_back()
            raise
        finally:
            with suppress(ValueError):
                self._waiting.remove(turn)
        return _handed_over(turn)

    def give_back(self) -> None:
        """Free a slot: it passes straight to the longest waiter, if any."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.taken -= 1


def _handed_over(turn: asyncio.Future[None]) -> bool:
    """Whether a slot was given to this waiter (even if its wait timed out just after)."""
    return turn.done() and not turn.cancelled()


class AdmissionControl:
    def __init__(self, app: ASGIApp, max_in_flight: int, max_queued: int, queue_wait: float):
        self.app = app
        self.slots = Slots(max_in_flight, max_queued) if max_in_flight else None
        self.queue_wait = queue_wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.slots is None or scope["type"] != "http" or scope["path"] in NEVER_REFUSED:
            await self.app(scope, receive, send)
            return
        if not await self.slots.take(self.queue_wait):
            REFUSED.inc()
            await busy()(scope, receive, send)
            return
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            IN_FLIGHT.dec()
            self.slots.give_back()


def busy() -> JSONResponse:
    return JSONResponse(
        {
            "detail": "the server is at capacity; retry later",
            "retry_after_seconds": RETRY_AFTER_SECONDS,
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), **SECURITY_HEADERS},
    )


def limit_admission(app: FastAPI, settings: Settings) -> None:
    """Bound the app's in-flight requests (`RAG_MAX_IN_FLIGHT=0`: no bound). Added after the
    other middlewares, so it runs before them: a refusal skips tracing and the request
    metrics (it has its own counter), which under overload cost the event loop more than the
    cached answers being served."""
    app.add_middleware(
        AdmissionControl,
        max_in_flight=settings.max_in_flight,
        max_queued=settings.max_queued,
        queue_wait=settings.queue_wait_seconds,
    )
