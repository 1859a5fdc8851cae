"""/v1/erasure-requests, /v1/documents/{doc_id} and /v1/audit on a platform of their own
(erasure changes it, so not the shared sample index)."""

import logging
from collections.abc import Iterator, Sequence

import pytest
from fastapi.testclient import TestClient
from test_erasure import PHRASE, SUBJECT, index_with_badges

import rag_assets.erasure
from rag_core import services
from rag_core.adapters.processes import free_port
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.domain.layout import AUDIT_PREFIX, TOMBSTONES_PREFIX, audit_record_key
from rag_core.settings import Settings
from rag_serving.main import create_app


@pytest.fixture
def client(rag_home: Settings) -> Iterator[TestClient]:
    index_with_badges(rag_home)
    with TestClient(create_app(rag_home)) as test_client:
        yield test_client


def test_a_subject_request_is_accepted_then_completes_verified(client: TestClient) -> None:
    response = client.post("/v1/erasure-requests", json={"subject": SUBJECT})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["requested_by"] == "dev" and SUBJECT not in response.text

    # The test client runs background tasks before it returns.
    done = client.get(f"/v1/erasure-requests/{accepted['request_id']}").json()
    assert done["status"] == "completed" and done["matched_documents"] == 1
    assert done["verification"] and all(done["verification"].values())
    hits = client.post("/v1/search", json={"query": PHRASE}).json()["hits"]
    assert all("visitor-badges" not in hit["source_uri"] for hit in hits)

    trail = client.get("/v1/audit").json()
    assert trail["intact"] and trail["head_sequence"] == 1
    assert trail["records"][0]["request_id"] == accepted["request_id"]


def test_deleting_a_document_is_an_erasure_request(client: TestClient, rag_home: Settings) -> None:
    [doc_id] = services.chunk_index(rag_home).documents_matching(DocumentSelector(subject=SUBJECT))
    response = client.delete(f"/v1/documents/{doc_id}")
    assert response.status_code == 202
    done = client.get(f"/v1/erasure-requests/{response.json()['request_id']}").json()
    assert done["status"] == "completed" and done["redacted_scope"] == {"doc_ids": [doc_id]}
    assert services.chunk_index(rag_home).versions_holding([doc_id]) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"subject": "a", "doc_ids": ["b"]}, {"subject": ""}, {"subject": "a", "extra": 1}],
)
def test_a_request_must_name_exactly_one_scope(client: TestClient, body: dict) -> None:
    assert client.post("/v1/erasure-requests", json=body).status_code == 422


def test_an_unknown_request_is_404(client: TestClient) -> None:
    assert client.get("/v1/erasure-requests/nope").status_code == 404


def test_a_tampered_trail_is_reported(client: TestClient, rag_home: Settings) -> None:
    client.post("/v1/erasure-requests", json={"subject": SUBJECT})
    store = services.object_store(rag_home)
    [record] = store.list(AUDIT_PREFIX)
    store.put(record.key, store.get(record.key).replace(b'"actor":"dev"', b'"actor":"eve"'))
    trail = client.get("/v1/audit").json()
    assert not trail["intact"] and "tampered" in trail["problems"][0]


def test_truncation_is_detected_against_the_expected_head(
    client: TestClient, rag_home: Settings
) -> None:
    client.post("/v1/erasure-requests", json={"subject": SUBJECT})
    published = client.get("/v1/audit").json()
    expected = f"{published['head_sequence']}:{published['head_hash']}"
    assert client.get("/v1/audit", params={"expected_head": expected}).json()["intact"]

    services.object_store(rag_home).delete(audit_record_key(1))

    trail = client.get("/v1/audit", params={"expected_head": expected}).json()
    assert not trail["intact"] and "truncated" in trail["problems"][0]
    assert client.get("/v1/audit", params={"expected_head": "1:xyz"}).status_code == 422


def test_a_readmission_lifts_the_tombstones_and_is_audited(
    client: TestClient, rag_home: Settings
) -> None:
    request_id = client.post("/v1/erasure-requests", json={"subject": SUBJECT}).json()["request_id"]
    store = services.object_store(rag_home)
    assert store.list(TOMBSTONES_PREFIX)

    response = client.post(f"/v1/erasure-requests/{request_id}/readmission")

    assert response.status_code == 200 and response.json()["action"] == "readmission"
    assert store.list(TOMBSTONES_PREFIX) == []
    records = client.get("/v1/audit").json()["records"]
    assert [r["action"] for r in records] == ["erasure", "readmission"]
    assert client.post("/v1/erasure-requests/nope/readmission").status_code == 404


def _refused_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture, reason: str
) -> dict[str, object]:
    """Submit a request that fails: it shows `failed` with the reason, and the API logged the
    failure with its traceback."""
    with caplog.at_level(logging.ERROR, logger="rag_serving.routes.erasure"):
        request_id = client.post("/v1/erasure-requests", json={"subject": SUBJECT}).json()[
            "request_id"
        ]
    failed = client.get(f"/v1/erasure-requests/{request_id}").json()
    assert failed["status"] == "failed" and reason in failed["error"], failed
    [logged] = [r for r in caplog.records if r.name == "rag_serving.routes.erasure"]
    assert request_id in logged.getMessage() and logged.exc_info is not None
    return dict(failed)


def test_an_erasure_failing_in_process_is_logged_and_failed(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run fails before the erasure starts (the lineage cannot be read): the request
    still says so, with the reason."""

    def unreadable(specs: Sequence[object]) -> tuple[()]:
        raise RuntimeError("no eraser for downstream assets: shadow_copy")

    monkeypatch.setattr(rag_assets.erasure, "lineage_stages", unreadable)
    _refused_and_logged(client, caplog, "no eraser for downstream assets: shadow_copy")


def test_an_erasure_dagster_cannot_take_is_logged_and_failed(
    rag_home: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Submitted to a Dagster webserver that is not there: the request fails, resumable."""
    url = f"http://127.0.0.1:{free_port()}"
    settings = rag_home.model_copy(update={"orchestrator": "dagster", "dagster_url": url})
    with TestClient(create_app(settings)) as client:
        failed = _refused_and_logged(client, caplog, f"DagsterRequestFailed: {url}")
    assert failed["matched_documents"] == 0  # nothing was resolved, let alone erased
