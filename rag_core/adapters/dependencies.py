"""Outside services the API depends on: riding out an outage of the optional ones, and
saying which are reachable (the readiness probe).

The response cache and the shared rate limits live in Redis when `RAG_CACHE_URL` names one.
Neither is needed to answer: while Redis is unreachable a cache lookup misses, a store is
skipped and rate limits fall back to the process's own buckets. A `CircuitBreaker` makes that
cheap: after one failure, callers fall back at once for `retry_seconds` instead of each waiting
for a timeout; then a single caller tries the dependency again. An outage is logged once when
it starts and once when it ends, and every fallback is counted in
`rag_dependency_fallbacks_total`. Work that cannot do without the dependency (erasing cached
answers) fails with `DependencyUnavailable` instead, which the API answers with 503.

`ReadinessProbe` checks the index (required), the cache and the LLM (optional: the API
degrades without them) at most once per `ttl_seconds`, on a thread of its own, so that probes
neither scan anything nor queue behind requests for the request thread pool.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar

import httpx
from prometheus_client import Counter

from rag_core.domain.schemas import DependencyStatus, ReadinessReport
from rag_core.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "rag_dependency_fallbacks",
    "Calls served without an unreachable dependency (response_cache, rate_limiter).",
    ["dependency"],
)
PROBE_TIMEOUT_SECONDS = 1.0
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


Check = Callable[[], str]  # a description of the dependency when reachable; raises otherwise


@dataclass(frozen=True)
class Dependency:
    name: str
    required: bool
    check: Check


def index_check(table_version: Callable[[], int]) -> Check:
    """`ChunkIndex.table_version` opens the table to read its version: one manifest read,
    whatever the table's size (never a count or a scan)."""
    return lambda: f"table version {table_version()}"


def redis_check(url: str) -> Check:
    client = redis_client(url, PROBE_TIMEOUT_SECONDS)

    def ping() -> str:
        client.ping()
        return "redis"

    return ping


def llm_check(settings: Settings) -> Check:
    """The model server's `/models`, which OpenAI-compatible servers answer without
    generating anything."""
    url = f"{settings.llm_base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"}

    def get_models() -> str:
        httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT_SECONDS).raise_for_status()
        return settings.llm_model

    return get_models


def serving_dependencies(settings: Settings, table_version: Callable[[], int]) -> list[Dependency]:
    """The index is required; the cache and the LLM are not, as answers go on without them
    (uncached; extractive)."""
    cache_url = settings.cache_url.get_secret_value()
    shared_cache = cache_url.startswith(("redis://", "rediss://"))
    dependencies = [
        Dependency("index", True, index_check(table_version)),
        Dependency("cache", False, redis_check(cache_url) if shared_cache else lambda: "disk"),
    ]
    if settings.llm_base_url:
        dependencies.append(Dependency("llm", False, llm_check(settings)))
    return dependencies


def _status(dependency: Dependency) -> DependencyStatus:
    try:
        return DependencyStatus(ok=True, required=dependency.required, detail=dependency.check())
    except Exception as error:  # any failure means "not reachable"; the cause goes to the log
        log.warning("readiness: %s is down: %s", dependency.name, error)
        detail = f"unreachable ({type(error).__name__})"  # no host names to unauthenticated callers
        return DependencyStatus(ok=False, required=dependency.required, detail=detail)


def check_all(dependencies: list[Dependency]) -> ReadinessReport:
    statuses = {dependency.name: _status(dependency) for dependency in dependencies}
    overall: Literal["ready", "degraded", "unavailable"] = "ready"
    if any(status.required and not status.ok for status in statuses.values()):
        overall = "unavailable"
    elif not all(status.ok for status in statuses.values()):
        overall = "degraded"
    return ReadinessReport(status=overall, dependencies=statuses, checked_at=datetime.now(UTC))


class ReadinessProbe:
    def __init__(
        self,
        dependencies: list[Dependency],
        ttl_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._dependencies, self._ttl, self._clock = dependencies, ttl_seconds, clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="readiness")
        self._latest: Future[ReadinessReport] | None = None
        self._started_at = 0.0
        self._lock = threading.Lock()

    async def report(self) -> ReadinessReport:
        """The latest report, checked again when older than the ttl; probes arriving while a
        check runs wait for that one."""
        with self._lock:
            now = self._clock()
            if self._latest is None or now - self._started_at > self._ttl:
                self._latest = self._executor.submit(check_all, self._dependencies)
                self._started_at = now
            latest = self._latest
        return await asyncio.wrap_future(latest)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
