"""Traces and metrics of the query path (one span and one latency observation per stage;
queries, answers by generator, model fallbacks, time to first token) and of the indexing
stream (event-to-queryable lag, events by topic and outcome, consumer lag, batch duration,
dead letters, the index checks as the worker evaluates them).

Spans go through the OpenTelemetry API (exported only when the serving process configures an
exporter); metrics are Prometheus collectors, named `rag_*` for the dashboards.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import AttributeValue
from prometheus_client import Counter, Gauge, Histogram

tracer = trace.get_tracer("rag_platform")

# Span attributes that LLM trace viewers read, in both conventions: OpenTelemetry's GenAI
# (`gen_ai.*`) and OpenInference's (`openinference.span.kind`, `llm.*`, `retrieval.*`: what
# Arize Phoenix reads). Questions, answers and chunk text only with RAG_TRACE_CONTENT.
SPAN_KIND = "openinference.span.kind"  # CHAIN, RETRIEVER, RERANKER, LLM
INPUT_VALUE, OUTPUT_VALUE = "input.value", "output.value"

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
QUERIES = Counter(
    "rag_queries", "Queries answered, by whether the answer came from the cache.", ["cached"]
)
ANSWERS = Counter(
    "rag_answers",
    "Answers generated (not cached), by generator: the model's name or `extractive`.",
    ["generator"],
)
LLM_FALLBACKS = Counter(
    "rag_llm_fallbacks",
    "Answers the extractive answerer gave although a model is configured, by why the model "
    "was not used (unreachable, timeout, error).",
    ["reason"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "rag_llm_time_to_first_token_seconds",
    "From the start of a streamed answer's generation to its first text, by the generator "
    "that wrote it (the model's name or `extractive`).",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
STREAM_EVENTS = Counter(
    "rag_stream_events",
    "Change events the streaming worker handled, by topic and outcome (applied, no_op, "
    "dead_letter).",
    ["topic", "outcome"],
)
STREAM_CONSUMER_LAG = Gauge(
    "rag_stream_consumer_lag",
    "Events on a partition the streaming worker's group has not committed yet: the high "
    "watermark minus the committed offset, refreshed about once a second.",
    ["topic", "partition"],
)
STREAM_BATCH_SECONDS = Histogram(
    "rag_stream_batch_duration_seconds",
    "Time from a batch polled to its offsets committed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DEAD_LETTERS = Counter(
    "rag_dead_letters",
    "Events the streaming worker parked on the dead-letter topic, by the topic they came from.",
    ["topic"],
)
INDEX_CHECK_PASSED = Gauge(
    "rag_index_check_passed",
    "Whether the index's check passed (1) or not (0) when the streaming worker last evaluated "
    "it: freshness_lag, vector_dimension, no_empty_chunks, rows_match_live_chunks.",
    ["check"],
)
INDEX_LAST_WRITE = Gauge(
    "rag_index_last_write_timestamp_seconds",
    "Unix time the streaming worker last wrote to the index.",
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


@dataclass(frozen=True)
class TracedDocument:
    """A retrieved chunk as a span lists it."""

    id: str
    score: float
    content: str


def document_attributes(
    prefix: str, documents: Sequence[TracedDocument], *, content: bool
) -> dict[str, AttributeValue]:
    """OpenInference's flattened list of documents under `prefix` (`retrieval.documents`):
    ids and scores, the text only with `content`, as a trace backend is beyond the reach of
    an erasure."""
    attributes: dict[str, AttributeValue] = {}
    for n, document in enumerate(documents):
        attributes[f"{prefix}.{n}.document.id"] = document.id
        attributes[f"{prefix}.{n}.document.score"] = document.score
        if content:
            attributes[f"{prefix}.{n}.document.content"] = document.content
    return attributes


def generation_attributes(
    *,
    requested_model: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    provider: str | None,
) -> dict[str, AttributeValue]:
    """An answer's generation: the model asked for and the one that answered (they differ
    when the extractive fallback did), its tokens, and the provider's protocol (None for no
    model)."""
    attributes: dict[str, AttributeValue] = {
        SPAN_KIND: "LLM",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": requested_model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": prompt_tokens,
        "gen_ai.usage.output_tokens": completion_tokens,
        "llm.model_name": model,
        "llm.token_count.prompt": prompt_tokens,
        "llm.token_count.completion": completion_tokens,
        "llm.token_count.total": prompt_tokens + completion_tokens,
    }
    if provider is not None:
        attributes |= {"gen_ai.provider.name": provider, "llm.system": provider}
    return attributes


@contextmanager
def continuing(
    name: str, carried: Sequence[Context], attributes: dict[str, AttributeValue]
) -> Iterator[Span]:
    """A consumer span for work on messages that carried trace contexts. It is a child of
    the first valid one, so that one trace runs from a producer to the work (for a batch
    from several producers, the first's trace), and links to each, so that every producer's
    trace leads to it."""
    parent: Context | None = None
    links: dict[tuple[int, int], Link] = {}
    for context in carried:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            parent = parent or context
            links.setdefault((span_context.trace_id, span_context.span_id), Link(span_context))
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, links=list(links.values()),
        attributes=attributes,
    ) as span:  # fmt: skip
        yield span
