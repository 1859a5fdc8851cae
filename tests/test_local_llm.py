"""The embedded default end to end: the packaged Qwen2.5-Coder-0.5B weights assembled and
served by llama-cpp-python on loopback, answering over the sample corpus with citations."""

import pytest

from rag_core import services
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import LOCAL_MODEL
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.domain.schemas import ChunkReference, QueryRequest, QueryResponse
from rag_core.flows.querying import QueryService
from rag_core.settings import Settings

from conftest import PORT_DOCUMENT

pytestmark = pytest.mark.slow
PORT_FACT_QUESTION = "What is the default TCP port of the PostgreSQL server?"


@pytest.fixture(scope="module")
def llm_settings(sample_index: Settings, local_llm: LocalLLMServer) -> Settings:
    # A loaded 2-core machine can take over a minute per answer; fall back only on failure.
    return sample_index.model_copy(
        update={"llm_base_url": local_llm.base_url, "llm_timeout_seconds": 300.0}
    )


@pytest.fixture(scope="module")
def service(llm_settings: Settings) -> QueryService:
    return services.query_service(llm_settings)


def _chunk_text(settings: Settings, cited: ChunkReference) -> str:
    rows = services.chunk_index(settings).rows(DocumentSelector(doc_ids=(cited.doc_id,)))
    [row] = [row for row in rows if row["chunk_id"] == cited.chunk_id]
    return str(row["text"])


def test_local_model_answers_with_citations_that_hold_the_fact(
    service: QueryService, llm_settings: Settings
) -> None:
    response = service.query(QueryRequest(question=PORT_FACT_QUESTION))
    assert response.generator == LOCAL_MODEL
    assert response.usage.prompt_tokens > 100 and response.usage.completion_tokens > 0
    assert "5432" in response.answer
    assert response.citations, response.answer
    cited_texts = [_chunk_text(llm_settings, c) for c in response.citations]
    assert all("5432" in text for text in cited_texts), "every citation holds the fact"
    assert all(c.source_uri.endswith(PORT_DOCUMENT) for c in response.citations)
    for citation in response.citations:
        assert f"[{citation.n}]" in response.answer


def test_local_model_streams_tokens(service: QueryService) -> None:
    # A question no other test over the shared sample index asks: a cached answer would
    # arrive as one piece.
    items = list(
        service.stream(QueryRequest(question="How do I create a new database named shop?"))
    )
    *tokens, final = items
    assert isinstance(final, QueryResponse) and final.generator == LOCAL_MODEL
    assert not final.cached
    assert len(tokens) > 3 and all(isinstance(token, str) for token in tokens)
    assert final.usage.completion_tokens > 0
