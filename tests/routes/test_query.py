import json
import re
import time
from pathlib import Path

from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rag_core import services
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.settings import Settings
from rag_serving.main import create_app

from conftest import PORT_DOCUMENT, PORT_QUESTION, ingest


def test_answer_cites_the_document_that_holds_it(client: TestClient) -> None:
    response = client.post("/v1/query", json={"question": PORT_QUESTION, "top_k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["generator"] == "extractive"
    assert "5432" in body["answer"]
    first = body["citations"][0]
    assert first["source_uri"].endswith(PORT_DOCUMENT)
    assert first["n"] == 1 and "[1]" in body["answer"]
    assert {"chunk_id", "doc_id", "version", "title", "score", "snippet"} <= set(first)
    for citation in body["citations"]:
        assert f"[{citation['n']}]" in body["answer"]


def test_question_outside_every_filter_gets_no_answer(client: TestClient) -> None:
    body = client.post(
        "/v1/query", json={"question": PORT_QUESTION, "filters": {"doc_ids": []}}
    ).json()
    assert body["citations"] == []
    assert body["answer"].startswith("I don't know")


def test_oversized_question_is_rejected(client: TestClient) -> None:
    assert client.post("/v1/query", json={"question": "x" * 5000}).status_code == 422


def test_every_answer_reports_usage_and_generator(client: TestClient) -> None:
    body = client.post("/v1/query", json={"question": "What does VACUUM FULL do?"}).json()
    assert body["usage"] == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "currency": "GBP",
    }
    assert body["generator"] == "extractive" and isinstance(body["cached"], bool)


def test_repeat_is_served_from_the_cache_until_the_index_changes(
    rag_home: Settings, tmp_path: Path
) -> None:
    (tmp_path / "a.md").write_text("# Parking\n\nVisitors park on level two of the garage.\n")
    ingest(rag_home, tmp_path / "a.md")
    question = {"question": "Where do visitors park?"}
    with TestClient(create_app(rag_home)) as fresh:
        first = fresh.post("/v1/query", json=question).json()
        again = fresh.post("/v1/query", json={"question": "  where do VISITORS park? "}).json()
        assert (first["cached"], again["cached"]) == (False, True)
        assert again["answer"] == first["answer"] and again["citations"] == first["citations"]

        (tmp_path / "b.md").write_text("# Bikes\n\nBicycles are stored in the basement.\n")
        ingest(rag_home, tmp_path / "b.md")
        time.sleep(rag_home.index_version_ttl_seconds)  # the documented bound on a stale hit
        assert fresh.post("/v1/query", json=question).json()["cached"] is False


def test_trace_id_header_names_the_trace_of_every_stage(client: TestClient) -> None:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    response = client.post("/v1/query", json={"question": "How are JSON values indexed?"})
    trace_id = int(response.headers["X-Trace-Id"], 16)
    finished = exporter.get_finished_spans()
    assert {"cache_lookup", "retrieve", "rerank", "generate"} <= {span.name for span in finished}
    assert {span.context.trace_id for span in finished} == {trace_id}, "one trace per request"
    [root] = [span for span in finished if span.parent is None]
    assert root.name == "POST /v1/query"


def _events(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        kind, data = block.split("\n", 1)
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_streaming_sends_tokens_then_the_full_response(client: TestClient) -> None:
    question = {"question": "What are the index types in PostgreSQL?", "stream": True}
    with client.stream("POST", "/v1/query", json=question) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.read().decode())
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) >= 2
    done = events[-1][1]
    assert "".join(data["text"] for _, data in events[:-1]) == done["answer"]
    assert done["citations"] and done["usage"]["currency"] == "GBP"

    plain = client.post("/v1/query", json={**question, "stream": False}).json()
    assert plain["cached"] is True and plain["answer"] == done["answer"]


def test_extractive_citations_hold_the_quoted_sentences(client: TestClient) -> None:
    body = client.post("/v1/query", json={"question": "What does VACUUM reclaim?"}).json()
    index = services.chunk_index(client.app.state.query_service.retriever.settings)
    for sentence, n in re.findall(r"(.+?) \\[(\\d+)\\]\\s*", body["answer"]):
        [citation] = [c for c in body["citations"] if c["n"] == int(n)]
        rows = index.rows(DocumentSelector(doc_ids=(citation["doc_id"],)))
        [row] = [row for row in rows if row["chunk_id"] == citation["chunk_id"]]
        assert sentence.strip() in row["text"]
