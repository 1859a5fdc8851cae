"""Which outside services the API can reach (`/readyz`).

`ReadinessProbe` checks the index (required), the cache and the LLM (optional: the API
degrades without them) at most once per `ttl_seconds`, on a thread of its own, so that probes
neither scan anything nor queue behind requests for the request thread pool.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from rag_core.adapters.dependencies import redis_client
from rag_core.domain.schemas import DependencyStatus, ReadinessReport
from rag_core.settings import Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0


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
    if settings.answerer == "llm" and settings.llm_base_url:  # none under `extractive`
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
