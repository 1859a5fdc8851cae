"""`GET /v1/documents/{doc_id}` and `GET /v1/documents`: from the opaque id Dagster shows to
the document, within what the caller's groups may read, and nothing once it is erased."""

from collections.abc import Iterator

import dagster as dg
import pytest
from fastapi.testclient import TestClient
from test_erasure import BADGES, BADGES_TEXT, SUBJECT, forget, index_with_badges

from rag_core import services
from rag_core.adapters.catalog import put_source
from rag_core.domain.ids import doc_id_for
from rag_core.flows.erasure import ErasureScope
from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, bearer, oidc

BROKEN = "documents/scans/broken.pdf"
NOT_FOUND = {"detail": "no such document"}


@pytest.fixture
def indexed(rag_home: Settings) -> tuple[dg.DagsterInstance, str]:
    """The badges document (acl `staff`, one subject), a public one and an unparseable PDF,
    indexed; returns the instance and the badges' doc id."""
    put_source(services.object_store(rag_home), BROKEN, b"%PDF-1.7\n this is not a pdf")
    return index_with_badges(rag_home)


@pytest.fixture
def api(rag_home: Settings, issuer: Issuer) -> Iterator[TestClient]:
    with TestClient(create_app(oidc(rag_home, issuer))) as client:
        yield client


def test_a_document_is_described_to_those_who_may_read_it(
    indexed: tuple[dg.DagsterInstance, str], api: TestClient, issuer: Issuer
) -> None:
    _, doc_id = indexed
    staff = bearer(issuer.token(sub="sam", groups=["staff"]))
    outsider = bearer(issuer.token(sub="ed", groups=["engineering"]))

    response = api.get(f"/v1/documents/{doc_id}", headers=staff)
    assert response.status_code == 200
    document = response.json()
    assert document["doc_id"] == doc_id and document["source_key"] == BADGES
    assert document["source_uri"].endswith(BADGES) and document["title"] == "Visitor badges"
    [version] = document["versions"]
    assert version["parse_status"] == "parsed" and version["failure_reason"] is None
    assert version["size"] == len(BADGES_TEXT)
    assert version["chunks"] == document["chunks"] > 0
    assert version["version"] == document["latest_version"]
    assert document["access"] == {"acl": ["staff"], "subjects": [SUBJECT]}

    # Outside the group the document does not exist, as if it never had.
    assert api.get(f"/v1/documents/{doc_id}", headers=outsider).json() == NOT_FOUND
    assert api.get(f"/v1/documents/{'0' * 32}", headers=staff).status_code == 404
    assert api.get("/v1/documents/not-an-id", headers=staff).status_code == 422

    listed = api.get("/v1/documents", headers=staff).json()
    assert listed["total"] == 3 == len(listed["documents"])
    assert [d["source_key"] for d in listed["documents"]] == sorted(
        [BADGES, BROKEN, "documents/pip.md"]
    )
    outside = api.get("/v1/documents", headers=outsider).json()
    assert outside["total"] == 2 and doc_id not in {d["doc_id"] for d in outside["documents"]}
    page = api.get("/v1/documents?limit=1&offset=1", headers=staff).json()
    assert page["total"] == 3 and [d["source_key"] for d in page["documents"]] == [BROKEN]

    # By part of the title (any case) or of the source key.
    by_title = api.get("/v1/documents", params={"name": "VISITOR BADGES"}, headers=staff).json()
    assert [d["doc_id"] for d in by_title["documents"]] == [doc_id]
    by_key = api.get("/v1/documents", params={"name": "security/"}, headers=staff).json()
    assert [d["doc_id"] for d in by_key["documents"]] == [doc_id]
    hidden = api.get("/v1/documents", params={"name": "visitor"}, headers=outsider).json()
    assert hidden == {"documents": [], "total": 0}


def test_an_unparseable_document_says_why(
    indexed: tuple[dg.DagsterInstance, str], api: TestClient, issuer: Issuer, rag_home: Settings
) -> None:
    broken = doc_id_for(services.object_store(rag_home).uri_for(BROKEN))
    anyone = bearer(issuer.token(sub="ed", groups=["engineering"]))

    document = api.get(f"/v1/documents/{broken}", headers=anyone).json()

    assert document["source_key"] == BROKEN and document["chunks"] == 0
    assert document["title"] is None  # nothing indexed: no title a reader would give it
    [version] = document["versions"]
    assert version["parse_status"] == "failed" and version["failure_reason"]


def test_an_erased_document_is_not_found(
    indexed: tuple[dg.DagsterInstance, str], api: TestClient, issuer: Issuer, rag_home: Settings
) -> None:
    instance, doc_id = indexed
    staff = bearer(issuer.token(sub="sam", groups=["staff"]))
    assert api.get(f"/v1/documents/{doc_id}", headers=staff).status_code == 200

    request = forget(rag_home, instance, ErasureScope(doc_ids=[doc_id]))

    assert request.status == "completed"
    assert api.get(f"/v1/documents/{doc_id}", headers=staff).json() == NOT_FOUND
    found = api.get("/v1/documents", params={"name": "badges"}, headers=staff).json()
    assert found == {"documents": [], "total": 0}
