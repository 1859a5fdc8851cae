"""Uploads (stored with their acl sidecar, keys confined to documents/, body limit) and
reindexing, under the rag:ingest scope."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core import services
from rag_core.adapters.catalog import read_source
from rag_core.domain.documents import SourceMetadata
from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, bearer, oidc

DEAL = b"# Deal\n\nThe codename of the acquisition is BLUEHERON.\n"


UPLOAD_LIMIT = 100_000  # above the 65,536 bytes any other request may carry


@pytest.fixture
def api(rag_home: Settings) -> Iterator[TestClient]:
    settings = rag_home.model_copy(update={"max_upload_bytes": UPLOAD_LIMIT})
    with TestClient(create_app(settings)) as client:
        yield client


def test_an_upload_is_stored_with_its_acl_then_reindexed(
    api: TestClient, rag_home: Settings
) -> None:
    upload = api.post("/v1/documents?key=finance/deal.md&acl=finance", content=DEAL)
    assert upload.status_code == 202
    accepted = upload.json()
    assert accepted["source_key"] == "documents/finance/deal.md"
    stored = read_source(services.object_store(rag_home), accepted["source_key"])
    assert stored == (DEAL, SourceMetadata(acl=["finance"]))

    reindex = api.post(f"/v1/documents/{accepted['doc_id']}/reindex")
    assert reindex.status_code == 202 and reindex.json() == accepted
    hits = api.post("/v1/search", json={"query": "acquisition codename"}).json()["hits"]
    assert hits[0]["doc_id"] == accepted["doc_id"]


@pytest.mark.parametrize(
    "key",
    ["../outside.md", "a/../../b.md", "/etc/passwd", "a//b.md", "./a.md", "a\\..\\b.md",
     "a\nb.md", "deal.md.meta.json", "warehouse/tickets/1.md", ""],
)  # fmt: skip
def test_keys_that_could_escape_are_refused(api: TestClient, key: str) -> None:
    response = api.post("/v1/documents", params={"key": key}, content=DEAL)
    assert response.status_code == 422


def test_uploads_have_their_own_limit_even_unannounced(api: TestClient) -> None:
    assert api.post("/v1/documents?key=big.txt", content=b"x" * 90_000).status_code == 202
    assert api.post("/v1/documents?key=big.txt", content=b"x" * 120_000).status_code == 413
    chunks = iter([b"x" * 60_000, b"x" * 60_000])  # chunked: no Content-Length to check
    assert api.post("/v1/documents?key=big.txt", content=chunks).status_code == 413


def test_reindex_needs_a_known_document(api: TestClient) -> None:
    assert api.post(f"/v1/documents/{'0' * 32}/reindex").status_code == 404
    assert api.post("/v1/documents/..%2F..%2Fetc/reindex").status_code in (404, 422)


def test_ingest_needs_its_scope(rag_home: Settings, issuer: Issuer) -> None:
    with TestClient(create_app(oidc(rag_home, issuer))) as client:
        response = client.post(
            "/v1/documents?key=a.md", content=DEAL, headers=bearer(issuer.token())
        )
    assert response.status_code == 403 and response.json()["detail"] == "missing scope rag:ingest"
