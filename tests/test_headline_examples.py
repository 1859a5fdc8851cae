"""The README's `ragctl ask` examples on the defaults a newcomer runs: the sample corpus and
the packaged local model (Qwen2.5-Coder-0.5B over llama.cpp), answering, not falling back."""

from collections.abc import Iterator

import pytest

from rag_core import services
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import LOCAL_MODEL, assemble_local_model
from rag_core.adapters.processes import free_port
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.domain.schemas import ChunkReference, QueryRequest, QueryResponse
from rag_core.flows.querying import QueryService
from rag_core.settings import Settings

from conftest import PORT_DOCUMENT, PORT_QUESTION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(sample_index: Settings) -> Iterator[QueryService]:
    model = assemble_local_model(sample_index.home / "models")
    with LocalLLMServer(model, free_port()) as server:
        # A loaded 2-core machine can take over a minute per answer; fall back only on failure.
        settings = sample_index.model_copy(
            update={"llm_base_url": server.base_url, "llm_timeout_seconds": 300.0}
        )
        yield services.query_service(settings)


def _chunk_text(service: QueryService, cited: ChunkReference) -> str:
    rows = service.retriever.index.rows(DocumentSelector(doc_ids=(cited.doc_id,)))
    return next(str(row["text"]) for row in rows if row["chunk_id"] == cited.chunk_id)


def _ask(service: QueryService, question: str) -> QueryResponse:
    response = service.query(QueryRequest(question=question))
    assert response.generator == LOCAL_MODEL, "the model answered, not the fallback"
    return response


def test_the_port_question_is_answered_with_the_port(service: QueryService) -> None:
    """The model once answered "listen_addresses (string) [1]": the entry above `port` in the
    same passages, whose name echoes the question."""
    response = _ask(service, PORT_QUESTION)
    assert "5432" in response.answer, response.answer
    assert response.citations, response.answer
    assert all(c.source_uri.endswith(PORT_DOCUMENT) for c in response.citations)
    assert any("5432" in _chunk_text(service, c) for c in response.citations)


def test_the_create_database_question_is_answered_with_the_command(
    service: QueryService,
) -> None:
    response = _ask(service, "How do I create a new database named mydb?")
    assert "createdb mydb" in response.answer, response.answer
    assert response.citations
    assert all(c.source_uri.endswith("tutorial-createdb.html") for c in response.citations)
