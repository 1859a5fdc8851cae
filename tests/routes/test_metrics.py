import pytest
from fastapi.testclient import TestClient

from rag_core.adapters.index import ChunkIndex


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{rendered}}} " if labels else f"{name} "
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


def test_metrics_count_requests_stages_cache_and_index(client: TestClient) -> None:
    question = {"question": "Which options control pg_dump output format?"}
    client.post("/v1/query", json=question)
    client.post("/v1/query", json=question)
    client.post("/v1/search", json={"query": ""})

    text = client.get("/metrics").text

    assert (
        _sample(text, "rag_http_requests_total", route="/v1/query", method="POST", status="200")
        >= 2
    )
    assert (
        _sample(text, "rag_http_requests_total", route="/v1/search", method="POST", status="422")
        >= 1
    )
    assert _sample(text, "rag_cache_requests_total", cache="response", result="hit") >= 1
    assert _sample(text, "rag_stage_duration_seconds_count", stage="retrieve") >= 1
    assert _sample(text, "rag_stage_duration_seconds_count", stage="generate") >= 1
    assert _sample(text, "rag_index_chunks") > 100
    assert _sample(text, "rag_index_version") >= 1
    assert (
        'rag_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/query"}'
        in text
    )


def test_a_scrape_reads_the_index_gauges_without_a_scan(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = ChunkIndex.row_count(client.app.state.query_service.retriever.index)

    def scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scrape scanned the index")

    for method in ("stats", "live_versions", "_select"):
        monkeypatch.setattr(ChunkIndex, method, scan)

    text = client.get("/metrics").text

    assert _sample(text, "rag_index_chunks") == chunks > 100
