"""Bad input gets a JSON 4xx that says what is wrong, and never much of the input back: blank
questions, over-long questions, over-long bodies, over-long key segments."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core import services
from rag_core.adapters.catalog import read_source
from rag_core.domain.documents import SourceMetadata
from rag_core.settings import Settings
from rag_serving.main import create_app

DEAL = b"# Deal\n\nThe codename of the acquisition is BLUEHERON.\n"
UPLOAD_LIMIT = 100_000
LONGEST_SEGMENT = 237  # bytes: 255 less the longest suffix the store adds, `.meta.json.partial`


@pytest.fixture
def api(rag_home: Settings) -> Iterator[TestClient]:
    settings = rag_home.model_copy(update={"max_upload_bytes": UPLOAD_LIMIT})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/query", {"question": " \n\t "}), ("/v1/search", {"query": "   "})]
)
def test_a_blank_question_is_422(client: TestClient, path: str, body: dict) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "String should hold more than whitespace"


def test_a_long_question_is_refused_without_being_echoed(client: TestClient) -> None:
    question = "why is the sky blue " * 750  # 15 KB
    response = client.post("/v1/query", json={"question": question})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["msg"] == "String should have at most 2000 characters"
    assert error["input"] == question[:200] + "…"
    assert len(response.content) < 1000


def test_a_misnamed_field_does_not_echo_the_whole_body(client: TestClient) -> None:
    response = client.post("/v1/query", json={"questoin": "x" * 15_000})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "question"]
    assert len(response.content) < 1000


def test_a_413_is_json_stating_the_limit(client: TestClient) -> None:
    declared = client.post("/v1/search", content=b"x" * 70_000)
    chunked = client.post("/v1/search", content=iter([b"x" * 40_000, b"x" * 40_000]))
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json() == {"detail": "request body exceeds 65536 bytes"}
        assert response.headers["x-content-type-options"] == "nosniff"


def test_an_upload_413_states_the_upload_limit(api: TestClient) -> None:
    response = api.post("/v1/documents?key=big.txt", content=b"x" * (UPLOAD_LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body exceeds {UPLOAD_LIMIT} bytes"}


def test_a_key_segment_of_the_longest_length_is_stored(api: TestClient, rag_home: Settings) -> None:
    for segment in ("a" * (LONGEST_SEGMENT - 3) + ".md", "é" * 117 + ".md"):  # 237 bytes each
        response = api.post("/v1/documents", params={"key": f"notes/{segment}", "acl": "team"},
                            content=DEAL)  # fmt: skip
        assert response.status_code == 202, response.text
        stored = read_source(services.object_store(rag_home), response.json()["source_key"])
        assert stored == (DEAL, SourceMetadata(acl=["team"]))


@pytest.mark.parametrize("segment", ["a" * 235 + ".md", "a" * 250, "é" * 118 + ".md"])
def test_a_longer_key_segment_is_422_and_the_connection_lives(
    api: TestClient, segment: str
) -> None:
    assert len(segment.encode()) > LONGEST_SEGMENT
    response = api.post("/v1/documents", params={"key": f"notes/{segment}"}, content=DEAL)
    assert response.status_code == 422
    assert response.json() == {
        "detail": f"key: a path segment is longer than {LONGEST_SEGMENT} bytes"
    }
    assert api.post("/v1/documents", params={"key": "notes/short.md"}, content=DEAL).is_success
