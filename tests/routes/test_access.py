"""Per-document access on the hybrid and cached paths: a restricted document is the best
match, yet a caller outside its group never sees it, in search, answers, citations, the
stream or the cache, while a caller inside its group does."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag_core import services
from rag_core.domain.ids import doc_id_for
from rag_core.settings import Settings
from rag_serving.main import create_app
from routes.conftest import (
    RESTRICTED_KEY,
    SECRET,
    SECRET_QUESTION,
    Issuer,
    bearer,
    index_restricted_corpus,
    oidc,
)

QUESTION = SECRET_QUESTION


@pytest.fixture
def api(rag_home: Settings, issuer: Issuer) -> Iterator[TestClient]:
    index_restricted_corpus(rag_home)
    with TestClient(create_app(oidc(rag_home, issuer))) as client:
        yield client


def cited_doc_ids(response: dict[str, Any]) -> set[str]:
    return {citation["doc_id"] for citation in response["citations"]}


def streamed(api: TestClient, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The text of a streamed answer, and its closing `done` response."""
    body = api.post("/v1/query", json={"question": QUESTION, "stream": True}, headers=headers)
    assert body.status_code == 200
    events = [block.split("\n", 1) for block in body.text.strip().split("\n\n")]
    data = [(kind, json.loads(line.removeprefix("data: "))) for kind, line in events]
    text = "".join(item["text"] for kind, item in data if kind == "event: token")
    done = [item for kind, item in data if kind == "event: done"]
    assert len(done) == 1
    return text, done[0]


def test_a_restricted_document_reaches_only_its_group(
    api: TestClient, issuer: Issuer, rag_home: Settings
) -> None:
    store = services.object_store(rag_home)
    restricted = doc_id_for(store.uri_for(RESTRICTED_KEY))
    insider = bearer(issuer.token(sub="fiona", groups=["finance"]))
    outsider = bearer(issuer.token(sub="ed", groups=["engineering"]))
    ask = {"question": QUESTION}

    # The insider asks first, so their answer is in the cache when the outsider asks.
    inside = api.post("/v1/query", json=ask, headers=insider).json()
    assert SECRET in inside["answer"] and restricted in cited_doc_ids(inside)
    text, done = streamed(api, insider)
    assert SECRET in text and restricted in cited_doc_ids(done)

    outside = api.post("/v1/query", json=ask, headers=outsider).json()
    assert SECRET not in str(outside) and not outside["cached"]
    assert restricted not in cited_doc_ids(outside)
    hits = api.post("/v1/search", json={"query": QUESTION, "top_k": 10}, headers=outsider)
    assert hits.json()["hits"] and SECRET not in hits.text
    assert restricted not in {hit["doc_id"] for hit in hits.json()["hits"]}
    text, done = streamed(api, outsider)
    assert SECRET not in text and SECRET not in str(done)
    assert restricted not in cited_doc_ids(done)
    again = api.post("/v1/query", json=ask, headers=outsider).json()
    assert again["cached"] and SECRET not in str(again)
    assert restricted not in cited_doc_ids(again)

    # No groups at all: public documents only.
    nobody = api.post("/v1/query", json=ask, headers=bearer(issuer.token(sub="x"))).json()
    assert SECRET not in str(nobody) and restricted not in cited_doc_ids(nobody)
    assert api.post("/v1/query", json=ask, headers=insider).json()["cached"]
