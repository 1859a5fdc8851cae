from conftest import PORT_DOCUMENT, PORT_QUESTION
from fastapi.testclient import TestClient


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
