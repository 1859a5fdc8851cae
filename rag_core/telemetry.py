"""Traces and metrics of the query path (one span and one latency observation per stage) and
of the indexing stream (event-to-queryable lag, events by outcome).

Spans go through the OpenTelemetry API (exported only when the serving process configures an
exporter); metrics are Prometheus collectors, named `rag_*` for the dashboards.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span
from prometheus_client import Counter, Gauge, Histogram

tracer = trace.get_tracer("rag_platform")

STAGE_SECONDS = Histogram(
    "rag_stage_duration_seconds",
    "Latency of one stage of a request: cache_lookup, retrieve, rerank, generate.",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CACHE_REQUESTS = Counter(
    "rag_cache_requests", "Cache lookups by cache and result (hit, miss).", ["cache", "result"]
)
LLM_TOKENS = Counter(
    "rag_llm_tokens", "Tokens by model and kind (prompt, completion).", ["model", "kind"]
)
LLM_COST = Counter(
    "rag_llm_cost", "Cost of generation by model and currency.", ["model", "currency"]
)
FRESHNESS_LAG = Histogram(
    "rag_freshness_lag_seconds",
    "Time from a change event to the change being queryable, by operation (upsert, delete).",
    ["op"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 120, 300),
)
STREAM_EVENTS = Counter(
    "rag_stream_events",
    "Change events the streaming worker handled, by outcome (applied, no_op, dead_letter).",
    ["outcome"],
)
STREAM_FAILED_ATTEMPTS = Gauge(
    "rag_stream_failed_attempts",
    "Failed attempts in a row at the streaming worker's current batch (0 when it progresses).",
)
STREAM_LAST_PROGRESS = Gauge(
    "rag_stream_last_progress_timestamp_seconds",
    "Unix time the streaming worker last committed a batch or found nothing to do.",
)
STREAM_BROKER_CONNECTED = Gauge(
    "rag_stream_broker_connected", "1 while the streaming worker reaches the broker, else 0."
)
STREAM_BROKER_RECOVERIES = Counter(
    "rag_stream_broker_recoveries",
    "Times the streaming worker rejoined after the broker was unreachable, and caught up.",
)
STREAM_DEAD_LETTER_FAILURES = Counter(
    "rag_stream_dead_letter_failures", "Dead letters the broker did not accept."
)


@contextmanager
def stage(name: str) -> Iterator[Span]:
    """Time a stage as a child span of the current trace and in `rag_stage_duration_seconds`."""
    started = time.perf_counter()
    with tracer.start_as_current_span(name) as span:
        try:
            yield span
        finally:
            STAGE_SECONDS.labels(name).observe(time.perf_counter() - started)
