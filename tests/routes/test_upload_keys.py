"""An upload's key is relative to `documents/`, and may also carry that prefix."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core import services
from rag_core.adapters.catalog import read_source
from rag_core.domain.documents import SourceMetadata
from rag_core.settings import Settings
from rag_serving.main import create_app

NOTE = b"# Lockers\n\nLockers are on the second floor.\n"


@pytest.fixture
def api(rag_home: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(rag_home)) as client:
        yield client


@pytest.mark.parametrize("key", ["notes/lockers.md", "documents/notes/lockers.md"])
def test_a_key_with_or_without_the_documents_prefix_names_the_same_source(
    api: TestClient, rag_home: Settings, key: str
) -> None:
    response = api.post("/v1/documents", params={"key": key}, content=NOTE)
    assert response.status_code == 202
    assert response.json()["source_key"] == "documents/notes/lockers.md"
    store = services.object_store(rag_home)
    assert read_source(store, "documents/notes/lockers.md") == (NOTE, SourceMetadata())
    assert not store.exists("documents/documents/notes/lockers.md")


@pytest.mark.parametrize(
    "key", ["documents/", "documents/../outside.md", "documents/warehouse/tickets/1.md"]
)
def test_the_prefix_opens_no_way_around_the_key_checks(api: TestClient, key: str) -> None:
    assert api.post("/v1/documents", params={"key": key}, content=NOTE).status_code == 422
