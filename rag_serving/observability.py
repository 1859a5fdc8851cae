"""Request-level telemetry: a server span per request (its trace id in `X-Trace-Id`),
request counts and latencies by route and status, and index gauges."""

import os
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import Counter, Gauge, Histogram

from rag_core.telemetry import tracer

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
INDEX_VERSION = Gauge("rag_index_version", "Version of the LanceDB chunks table.")
INDEX_CHUNKS = Gauge("rag_index_chunks", "Chunks in the index.")


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
