"""Request-level telemetry: a server span per request (its trace id in `X-Trace-Id`),
request counts and latencies by route and status, index gauges, and what RAG_HOME's stores
hold: the scores of the latest recorded evaluation runs, the erasure requests and the length
of their audit trail."""

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rag_core import services
from rag_core.adapters import audit
from rag_core.evaluation.results import (
    RecordedRun,
    ResultsStoreBusy,
    latest_scores,
    results_path,
)
from rag_core.flows.erasure import ErasureOverview, ErasureTally
from rag_core.settings import Settings
from rag_core.telemetry import tracer

log = logging.getLogger(__name__)

TRACE_HEADER = "X-Trace-Id"
REQUESTS = Counter(
    "rag_http_requests", "HTTP requests by route, method and status.", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "rag_http_request_duration_seconds",
    "HTTP request latency by route.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MCP_TOOL_CALLS = Counter(
    "rag_mcp_tool_calls",
    "MCP tool calls by server (docstore, governance), tool and outcome (ok, error, "
    "input_required, rejected).",
    ["server", "tool", "outcome"],
)
MCP_TOOL_SECONDS = Histogram(
    "rag_mcp_tool_call_duration_seconds",
    "MCP tool call latency by server and tool.",
    ["server", "tool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
INDEX_VERSION = Gauge("rag_index_version", "Version of the LanceDB chunks table.")
INDEX_CHUNKS = Gauge("rag_index_chunks", "Chunks in the index.")
# 1, labelled with the process's cost profile: cost and latency series join it on their
# instance to be split by profile (each carries the model already), with no label added to them.
PROFILE = Info("rag_profile", "Cost profile (RAG_PROFILE) this process answers with.")
# Runs are recorded nightly or by hand: a scrape every 15 s need not reopen the store.
EVALUATION_CACHE_SECONDS = 30.0
# Erasures are watched for being late or failed: each scrape reads anew, scrapes at once
# (several Prometheus servers) share a read.
ERASURE_CACHE_SECONDS = 5.0


class EvaluationScores(Collector):
    """The latest recorded evaluation run of each set, read from the results store at scrape
    time: read-only, without waiting, at most once per `cache_seconds`. While a writer holds
    the store (a run being recorded) the values read last are served again, and the store is
    read at the next scrape; without a store there is nothing to export."""

    def __init__(self, settings: Settings, cache_seconds: float = EVALUATION_CACHE_SECONDS):
        self._settings = settings
        self._cache_seconds = cache_seconds
        self._runs: list[RecordedRun] = []
        self._read_at: float | None = None
        self._reading = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        runs = self._latest_runs()
        if not runs:
            return
        scores = GaugeMetricFamily(
            "rag_evaluation_score",
            "Each metric of the set's latest evaluation run (scores 0..1, latency in seconds, "
            "tokens, cost per 1,000 queries).",
            labels=["set", "metric"],
        )
        passed = GaugeMetricFamily(
            "rag_evaluation_passed",
            "Whether the set's latest evaluation run passed its blocking gates (1) or not (0).",
            labels=["set"],
        )
        recorded = GaugeMetricFamily(
            "rag_evaluation_last_run_timestamp_seconds",
            "When the set's latest evaluation run was recorded (Unix time).",
            labels=["set"],
        )
        for run in runs:
            for metric, value in sorted(run.metrics.items()):
                scores.add_metric([run.set_name, metric], value)
            passed.add_metric([run.set_name], float(run.passed))
            recorded.add_metric([run.set_name], run.recorded_at.replace(tzinfo=UTC).timestamp())
        yield from (scores, passed, recorded)

    def _latest_runs(self) -> list[RecordedRun]:
        with self._reading:
            now = time.monotonic()
            if self._read_at is not None and now - self._read_at < self._cache_seconds:
                return self._runs
            try:
                self._runs = latest_scores(self._settings)
            except ResultsStoreBusy:
                return self._runs
            # Nothing read (no store yet: a stat) is not kept: the first run shows at once.
            self._read_at = now if self._runs else None
            return self._runs


class ErasureGauges(Collector):
    """The erasure requests by state, the age of the oldest one not completed, the duration
    of the last one completed, and the length of the audit trail, read from the object store
    at scrape time, at most once per `cache_seconds` (the age is counted at each scrape).
    While the store cannot be read the values read last are served again."""

    def __init__(self, settings: Settings, cache_seconds: float = ERASURE_CACHE_SECONDS):
        self._store = services.object_store(settings)
        self._tally = ErasureTally(self._store)
        self._cache_seconds = cache_seconds
        self._read: tuple[ErasureOverview, int] | None = None
        self._read_at: float | None = None
        self._reading = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        read = self._latest()
        if read is None:
            return
        overview, trail_length = read
        requests = GaugeMetricFamily(
            "rag_erasure_requests", "Erasure requests by state.", labels=["state"]
        )
        for state, count in overview.by_status.items():
            requests.add_metric([state], count)
        yield requests
        oldest = overview.oldest_open_since
        yield GaugeMetricFamily(
            "rag_erasure_oldest_open_age_seconds",
            "Age of the oldest erasure request not completed (pending, running or failed); "
            "0 when there is none.",
            value=0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds(),
        )
        if overview.last_duration_seconds is not None:
            yield GaugeMetricFamily(
                "rag_erasure_last_duration_seconds",
                "From request to completion, of the erasure request completed last.",
                value=overview.last_duration_seconds,
            )
        yield GaugeMetricFamily(
            "rag_audit_chain_length", "Records in the erasure audit trail.", value=trail_length
        )

    def _latest(self) -> tuple[ErasureOverview, int] | None:
        with self._reading:
            now = time.monotonic()
            if self._read_at is not None and now - self._read_at < self._cache_seconds:
                return self._read
            try:
                self._read = (self._tally.read(), audit.length(self._store))
            except OSError as exc:
                log.warning("erasure gauges not read from the object store: %s", exc)
                return self._read
            self._read_at = now
            return self._read


_STORE_REGISTRIES: dict[tuple[Path, str], CollectorRegistry] = {}


def store_registry(settings: Settings) -> CollectorRegistry:
    """The registry of the gauges read from the stores under `settings` at scrape time (the
    evaluation results store; the object store's erasure requests and audit trail): one per
    pair of stores, kept apart from the default registry (which holds one value per
    process), so apps over other homes in one process export their own and share a store's
    cache."""
    stores = (results_path(settings), settings.object_store_uri)
    if stores not in _STORE_REGISTRIES:
        registry = CollectorRegistry()
        registry.register(EvaluationScores(settings))
        registry.register(ErasureGauges(settings))
        _STORE_REGISTRIES.setdefault(stores, registry)
    return _STORE_REGISTRIES[stores]


def configure_tracing() -> None:
    """Install the SDK tracer provider once per process, exporting by OTLP/HTTP when
    OTEL_EXPORTER_OTLP_ENDPOINT is set (without it, spans still carry trace ids)."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider()
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def instrument(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        with tracer.start_as_current_span(f"{request.method} {request.url.path}") as span:
            response = await call_next(request)
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            span.set_attribute("http.route", path)
            span.set_attribute("http.status_code", response.status_code)
            response.headers[TRACE_HEADER] = format(span.get_span_context().trace_id, "032x")
        REQUESTS.labels(path, request.method, str(response.status_code)).inc()
        REQUEST_SECONDS.labels(path, request.method).observe(time.perf_counter() - started)
        return response
