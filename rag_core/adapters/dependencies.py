"""Riding out an outage of an outside service the platform can do without (Redis).

The response cache and the shared rate limits live in Redis when `RAG_CACHE_URL` names one.
Neither is needed to answer: while Redis is unreachable a cache lookup misses, a store is
skipped and rate limits fall back to the process's own buckets. A `CircuitBreaker` makes that
cheap: after one failure, callers fall back at once for `retry_seconds` instead of each waiting
for a timeout; then a single caller tries the dependency again. An outage is logged once when
it starts and once when it ends, and every fallback is counted in
`rag_dependency_fallbacks_total`. Work that cannot do without the dependency (erasing cached
answers) fails with `DependencyUnavailable` instead, which the API answers with 503.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import Counter

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "rag_dependency_fallbacks",
    "Calls served without an unreachable dependency (response_cache, rate_limiter).",
    ["dependency"],
)
REDIS_CONNECT_TIMEOUT_SECONDS = 0.5

T = TypeVar("T")


class DependencyUnavailable(RuntimeError):
    """A dependency that this piece of work cannot do without is unreachable."""

    def __init__(self, name: str, retry_seconds: float):
        super().__init__(f"the {name.replace('_', ' ')} is unreachable")
        self.retry_seconds = retry_seconds


def redis_client(url: str, timeout_seconds: float) -> "redis.Redis":
    """A client that fails fast while Redis is down: half a second at most to connect (the
    default is 5 s), `timeout_seconds` per command, and one immediate retry, which replaces
    a pooled connection that Redis closed (a restart) without counting as an outage. The
    circuit breaker does the waiting."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=min(timeout_seconds, REDIS_CONNECT_TIMEOUT_SECONDS),
        socket_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 1),
    )


def redis_outages() -> tuple[type[Exception], ...]:
    """The errors meaning Redis cannot be reached (not those of a bad command)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        outages: tuple[type[Exception], ...],
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name, self.retry_seconds = name, retry_seconds
        self._outages, self._clock = outages, clock
        self._retry_at: float | None = None  # None while the dependency is reachable
        self._lock = threading.Lock()

    def call(self, action: Callable[[], T], fallback: Callable[[], T]) -> T:
        """`action()`, or `fallback()` when the dependency is (or just turned out) unreachable."""
        if not self._may_try():
            return self._fall_back(fallback)
        try:
            result = action()
        except self._outages as error:
            self._trip(error)
            return self._fall_back(fallback)
        self._reset()
        return result

    @contextmanager
    def required(self) -> Iterator[None]:
        """For work that cannot do without the dependency: it is tried whatever the breaker's
        state, and an outage is raised as `DependencyUnavailable`."""
        try:
            yield
        except self._outages as error:
            self._trip(error)
            raise DependencyUnavailable(self.name, self.retry_seconds) from error
        self._reset()

    def _may_try(self) -> bool:
        """Whether the breaker is closed, or open and due for a retry (which this caller then
        makes alone: the others go on falling back until it has answered)."""
        with self._lock:
            if self._retry_at is None:
                return True
            now = self._clock()
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_seconds
            return True

    def _fall_back(self, fallback: Callable[[], T]) -> T:
        FALLBACKS.labels(self.name).inc()
        return fallback()

    def _trip(self, error: Exception) -> None:
        with self._lock:
            starting = self._retry_at is None
            self._retry_at = self._clock() + self.retry_seconds
        if starting:
            log.warning(
                "%s unreachable, serving without it and retrying every %g s: %s",
                self.name, self.retry_seconds, error,
            )  # fmt: skip

    def _reset(self) -> None:
        if self._retry_at is None:
            return
        with self._lock:
            ending, self._retry_at = self._retry_at is not None, None
        if ending:
            log.warning("%s reachable again", self.name)
