import pytest
from fastapi.testclient import TestClient

from conftest import PORT_DOCUMENT, PORT_QUESTION

HIT_FIELDS = {"chunk_id", "doc_id", "version", "source_uri", "title", "score", "text"}


def test_search_returns_ranked_hits(client: TestClient) -> None:
    response = client.post("/v1/search", json={"query": PORT_QUESTION, "top_k": 4})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert len(hits) == 4
    assert set(hits[0]) >= HIT_FIELDS
    assert hits[0]["source_uri"].endswith(PORT_DOCUMENT)
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_filters_are_applied_in_the_query(client: TestClient) -> None:
    everything = client.post("/v1/search", json={"query": PORT_QUESTION, "top_k": 10}).json()
    other_doc = next(
        h["doc_id"] for h in everything["hits"] if not h["source_uri"].endswith(PORT_DOCUMENT)
    )
    filtered = client.post(
        "/v1/search",
        json={"query": PORT_QUESTION, "top_k": 10, "filters": {"doc_ids": [other_doc]}},
    ).json()["hits"]
    assert filtered and {hit["doc_id"] for hit in filtered} == {other_doc}

    prefix = everything["hits"][0]["source_uri"].rsplit("/", 1)[0] + "/"
    by_prefix = client.post(
        "/v1/search",
        json={"query": "pip install", "top_k": 10, "filters": {"source_prefix": prefix}},
    ).json()["hits"]
    assert by_prefix and all(hit["source_uri"].startswith(prefix) for hit in by_prefix)


@pytest.mark.parametrize(
    "body",
    [
        {"query": "", "top_k": 3},
        {"query": "x" * 2001},
        {"query": "ports", "top_k": 0},
        {"query": "ports", "top_k": 51},
        {"query": "ports", "filters": {"doc_ids": "not-a-list"}},
        {"top_k": 3},
    ],
)
def test_bad_requests_get_422(client: TestClient, body: dict) -> None:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]
