"""Traces you can open: the query's spans follow the GenAI and OpenInference conventions and
carry no text unless RAG_TRACE_CONTENT says so, an event's trace runs from its producer
through the real broker to the worker's index write, and Phoenix shows what was exported."""

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.adapters.phoenix import PhoenixServer
from rag_core.adapters.processes import free_port
from rag_core.domain.documents import SourceMetadata
from rag_core.domain.events import topics
from rag_core.domain.schemas import QueryRequest, QueryResponse
from rag_core.flows.streaming import StreamingIndexer
from rag_core.settings import Settings
from rag_core.telemetry import SPAN_KIND, tracer
from rag_serving.observability import configure_tracing

from conftest import announce, ingest, process

PARKING = "documents/handbook/parking.md"
SENTENCE = "Visitors park in the blue garage on level three, next to the lifts."
QUESTION = "Where do visitors park?"
QUERY_SPANS = {"query", "cache_lookup", "retrieval", "retrieve", "rerank", "generate"}


class Closable(SimpleSpanProcessor):
    """Exports each span as it ends, until shut down. The provider keeps its processors for
    the whole process: one shut down stays silent (an OTLP exporter would warn of every span
    it was handed after)."""

    closed = False

    def on_end(self, span: ReadableSpan) -> None:
        if not self.closed:
            super().on_end(span)

    def shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            super().shutdown()


def add_exporter(exporter: SpanExporter) -> Closable:
    """Export every span this process ends from now on (the API's provider, once per process)."""
    configure_tracing()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    processor = Closable(exporter)
    provider.add_span_processor(processor)
    return processor


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    processor = add_exporter(exporter)
    yield exporter
    processor.shutdown()


@pytest.fixture
def parking(rag_home: Settings, tmp_path: Path) -> Settings:
    (tmp_path / "parking.md").write_text(f"# Parking\n\n{SENTENCE}\n")
    ingest(rag_home, tmp_path / "parking.md")
    return rag_home


def ask(settings: Settings) -> QueryResponse:
    return services.query_service(settings).query(QueryRequest(question=QUESTION), use_cache=False)


def by_name(spans: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    finished = {span.name: span for span in spans.get_finished_spans()}
    assert QUERY_SPANS - {"cache_lookup"} <= set(finished), "cache bypassed: no lookup"
    return finished


def retrieved_ids(attributes: Mapping[str, Any] | None) -> list[Any]:
    """The chunk ids a retriever span lists, in rank order."""
    ids: list[Any] = []
    while (key := f"retrieval.documents.{len(ids)}.document.id") in (attributes or {}):
        ids.append((attributes or {})[key])
    return ids


def test_query_spans_name_models_tokens_and_chunks_but_hold_no_text(
    parking: Settings, spans: InMemorySpanExporter
) -> None:
    response = ask(parking)
    finished = by_name(spans)
    query, retrieval, generate = finished["query"], finished["retrieval"], finished["generate"]

    assert {span.context.trace_id for span in finished.values()} == {query.context.trace_id}
    assert retrieval.parent and retrieval.parent.span_id == query.context.span_id
    assert generate.parent and generate.parent.span_id == query.context.span_id
    assert (query.attributes or {})[SPAN_KIND] == "CHAIN"
    assert (finished["rerank"].attributes or {})[SPAN_KIND] == "RERANKER"

    attributes = retrieval.attributes or {}
    assert attributes[SPAN_KIND] == "RETRIEVER"
    ids = retrieved_ids(attributes)
    assert ids and {citation.chunk_id for citation in response.citations} <= set(ids)
    assert isinstance(attributes["retrieval.documents.0.document.score"], float)

    assert dict(generate.attributes or {}) == {
        SPAN_KIND: "LLM",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "extractive",
        "gen_ai.response.model": "extractive",
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
        "llm.model_name": "extractive",
        "llm.token_count.prompt": 0,
        "llm.token_count.completion": 0,
        "llm.token_count.total": 0,
    }
    assert "blue garage" in response.answer
    for span in finished.values():
        for name, value in (span.attributes or {}).items():
            assert "garage" not in str(value) and "visitors" not in str(value).lower(), name


def test_a_model_that_cannot_be_reached_shows_as_the_fallback_in_the_llm_span(
    parking: Settings, spans: InMemorySpanExporter
) -> None:
    unreachable = parking.model_copy(
        update={"llm_base_url": f"http://127.0.0.1:{free_port()}/v1", "llm_model": "qwen-test"}
    )
    assert ask(unreachable).generator == "extractive"
    attributes = by_name(spans)["generate"].attributes or {}
    assert attributes["gen_ai.request.model"] == "qwen-test"
    assert attributes["gen_ai.response.model"] == attributes["llm.model_name"] == "extractive"
    assert "gen_ai.provider.name" not in attributes  # no model answered


def test_trace_content_puts_the_question_the_answer_and_the_chunks_in_spans(
    parking: Settings, spans: InMemorySpanExporter
) -> None:
    response = ask(parking.model_copy(update={"trace_content": True}))
    finished = by_name(spans)
    query = finished["query"].attributes or {}
    assert (query["input.value"], query["output.value"]) == (QUESTION, response.answer)
    generate = finished["generate"].attributes or {}
    assert (generate["input.value"], generate["output.value"]) == (QUESTION, response.answer)
    retrieval = finished["retrieval"].attributes or {}
    assert retrieval["input.value"] == QUESTION
    assert SENTENCE in str(retrieval["retrieval.documents.0.document.content"])


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """Names of the span's parents, nearest first, as far as they were recorded here."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    while span.parent and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


@pytest.mark.slow
def test_an_events_trace_runs_from_its_producer_through_the_broker_to_the_index_write(
    kafka_platform: Settings, spans: InMemorySpanExporter
) -> None:
    settings = kafka_platform
    store = services.object_store(settings)
    with StreamingIndexer(settings) as worker:
        put_source(store, PARKING, f"# Parking\n\n{SENTENCE}".encode(), SourceMetadata())
        with tracer.start_as_current_span("a source changes") as producer:
            assert len(announce(settings)) == 1
        [outcome] = process(worker)
    trace_id = producer.get_span_context().trace_id
    finished = list(spans.get_finished_spans())
    [send] = [span for span in finished if span.kind == SpanKind.PRODUCER]
    [processing] = [span for span in finished if span.kind == SpanKind.CONSUMER]
    [index_write] = [span for span in finished if span.name == "stream.index"]

    assert send.name == f"send {topics(settings).documents}"
    assert (send.attributes or {})["messaging.batch.message_count"] == 1
    assert {send.context.trace_id, processing.context.trace_id} == {trace_id}
    assert processing.parent and processing.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in processing.links] == [send.context.span_id]
    assert index_write.context.trace_id == trace_id
    assert ancestors(index_write, finished)[:1] == [processing.name]
    assert ancestors(index_write, finished)[-1] == "a source changes"
    assert (index_write.attributes or {})["rag.versions"] == (outcome.indexed[0].partition_key,)


def phoenix_spans(phoenix: PhoenixServer, trace_id: str, expected: int) -> list[dict[str, Any]]:
    """The spans of a trace as Phoenix's REST API lists them, once it has taken `expected`
    (it writes what it receives in the background)."""
    url = f"{phoenix.url}/v1/projects/default/spans"
    deadline = time.monotonic() + 30
    with httpx.Client(trust_env=False, timeout=5) as client:
        while True:
            response = client.get(url, params={"trace_id": trace_id})
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()["data"]
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.mark.slow
def test_phoenix_shows_a_querys_spans_exported_to_it(
    parking: Settings, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    with PhoenixServer(tmp_path / "phoenix", log_path=tmp_path / "phoenix.log") as phoenix:
        processor = add_exporter(OTLPSpanExporter(endpoint=f"{phoenix.otlp_endpoint}/v1/traces"))
        try:
            ask(parking)
        finally:
            processor.shutdown()
        finished = by_name(spans)
        trace_id = format(finished["query"].context.trace_id, "032x")
        shown = {span["name"]: span for span in phoenix_spans(phoenix, trace_id, len(finished))}

    assert set(shown) == set(finished)
    kinds = {
        name: shown[name]["span_kind"] for name in ("query", "retrieval", "rerank", "generate")
    }
    assert kinds == {
        "query": "CHAIN", "retrieval": "RETRIEVER", "rerank": "RERANKER", "generate": "LLM"
    }  # fmt: skip
    query_id = shown["query"]["context"]["span_id"]
    assert shown["retrieval"]["parent_id"] == shown["generate"]["parent_id"] == query_id
    ids = retrieved_ids(shown["retrieval"]["attributes"])
    assert ids and ids == retrieved_ids(finished["retrieval"].attributes)
    generate = shown["generate"]["attributes"]
    assert (generate["llm.model_name"], generate["gen_ai.usage.output_tokens"]) == ("extractive", 0)
