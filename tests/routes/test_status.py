"""`GET /v1/status`: what `ragctl status` prints, for callers with the query scope."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core import services
from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, bearer, oidc


def _counts(status: dict) -> dict:
    return {name: value for name, value in status.items() if name != "checked_at"}


def test_status_counts_the_index(client: TestClient, sample_index: Settings) -> None:
    response = client.get("/v1/status")

    assert response.status_code == 200
    counted = response.json()
    expected = services.index_status(sample_index).model_dump(mode="json")
    assert _counts(counted) == _counts(expected)
    assert counted["documents"] > 0 and counted["chunks"] >= counted["documents"]
    assert set(counted) == set(expected)  # checked_at included


@pytest.fixture(scope="module")
def api(sample_index: Settings, issuer: Issuer) -> Iterator[TestClient]:
    with TestClient(create_app(oidc(sample_index, issuer))) as test_client:
        yield test_client


def test_status_needs_the_query_scope(api: TestClient, issuer: Issuer) -> None:
    assert api.get("/v1/status").status_code == 401
    refused = api.get("/v1/status", headers=bearer(issuer.token(scope="rag:ingest")))
    assert refused.status_code == 403 and refused.json()["detail"] == "missing scope rag:query"
    assert api.get("/v1/status", headers=bearer(issuer.token())).status_code == 200
