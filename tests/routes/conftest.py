from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_core.settings import Settings
from rag_serving.main import create_app


@pytest.fixture(scope="module")
def client(sample_index: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sample_index)) as test_client:
        yield test_client
