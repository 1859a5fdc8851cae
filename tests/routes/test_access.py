"""Per-document access on the hybrid and cached paths: a restricted document is the best
match, yet a caller outside its group never sees it, in search, answers, citations, the
stream or the cache, while a caller inside its group does."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_assets.ingest import ingest_sources, local_instance
from rag_core import services
from rag_core.documents import SourceMetadata, put_source
from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import Issuer, bearer, oidc

SECRET = "BLUEHERON"
QUESTION = "What is the codename of the acquisition?"


@pytest.fixture
def api(rag_home: Settings, issuer: Issuer) -> Iterator[TestClient]:
    store = services.object_store(rag_home)
    put_source(store, "documents/finance/deal.md",
               f"# Deal\n\nThe codename of the acquisition is {SECRET}; it closes in May.\n"
               .encode(), SourceMetadata(acl=["finance"]))  # fmt: skip
    put_source(store, "documents/handbook/lunch.md",
               b"# Lunch\n\nThe canteen serves lunch from noon; the acquisition of new "
               b"chairs is handled by facilities.\n")  # fmt: skip
    ingest_sources(rag_home, local_instance(rag_home))
    with TestClient(create_app(oidc(rag_home, issuer))) as client:
        yield client


def test_a_restricted_document_reaches_only_its_group(api: TestClient, issuer: Issuer) -> None:
    insider = bearer(issuer.token(sub="fiona", groups=["finance"]))
    outsider = bearer(issuer.token(sub="ed", groups=["engineering"]))
    ask = {"question": QUESTION}

    # The insider asks first, so their answer is in the cache when the outsider asks.
    inside = api.post("/v1/query", json=ask, headers=insider).json()
    assert SECRET in inside["answer"]
    assert any(c["source_uri"].endswith("deal.md") for c in inside["citations"])

    outside = api.post("/v1/query", json=ask, headers=outsider).json()
    assert SECRET not in str(outside) and not outside["cached"]
    hits = api.post("/v1/search", json={"query": QUESTION, "top_k": 10}, headers=outsider)
    assert hits.json()["hits"] and SECRET not in hits.text
    streamed = api.post("/v1/query", json=ask | {"stream": True}, headers=outsider)
    assert streamed.status_code == 200 and SECRET not in streamed.text
    again = api.post("/v1/query", json=ask, headers=outsider).json()
    assert again["cached"] and SECRET not in str(again)

    # No groups at all: public documents only.
    nobody = api.post("/v1/query", json=ask, headers=bearer(issuer.token(sub="x")))
    assert SECRET not in nobody.text
    assert api.post("/v1/query", json=ask, headers=insider).json()["cached"]
