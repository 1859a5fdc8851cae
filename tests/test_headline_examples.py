"""The README's `ragctl ask` examples on the defaults a newcomer runs: the sample corpus and
the packaged local model (Qwen2.5-Coder-0.5B over llama.cpp), answering, not falling back."""

import shlex

import pytest
from typer.testing import CliRunner

from rag_core import services
from rag_core.adapters.llm.server import LocalLLMServer
from rag_core.adapters.llm.weights import LOCAL_MODEL
from rag_core.domain.chunk_store import DocumentSelector
from rag_core.domain.schemas import ChunkReference, QueryRequest, QueryResponse
from rag_core.flows.querying import QueryService
from rag_core.settings import Settings, get_settings
from rag_serving.cli import DEV_EXAMPLES, app

from conftest import PORT_DOCUMENT, PORT_QUESTION

pytestmark = pytest.mark.slow


# A loaded 2-core machine can take over a minute per answer; fall back only on failure.
LLM_TIMEOUT_SECONDS = 300.0


@pytest.fixture(scope="module")
def service(sample_index: Settings, local_llm: LocalLLMServer) -> QueryService:
    settings = sample_index.model_copy(
        update={"llm_base_url": local_llm.base_url, "llm_timeout_seconds": LLM_TIMEOUT_SECONDS}
    )
    return services.query_service(settings)


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


# What each example the banner of `ragctl dev` suggests prints, at least.
BANNER_EXAMPLES_PRINT = {
    'ragctl ask "Which port does the server listen on?"': "5432",
    'ragctl search "reclaim storage occupied by dead tuples"': "sql-vacuum.html",
    "ragctl documents find vacuum": "sql-vacuum.html",
    "ragctl status": "unparseable",
}


def test_every_example_the_dev_banner_suggests_is_checked_here() -> None:
    assert set(BANNER_EXAMPLES_PRINT) == set(DEV_EXAMPLES)


@pytest.mark.parametrize("example", DEV_EXAMPLES)
def test_the_dev_banner_examples_work(
    example: str, sample_index: Settings, local_llm: LocalLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"RAG_HOME": str(sample_index.home), "RAG_LLM_BASE_URL": local_llm.base_url,
                        "RAG_LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT_SECONDS),
                        "COLUMNS": "200"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAG_CLI_USE_API", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, shlex.split(example)[1:])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert BANNER_EXAMPLES_PRINT[example] in result.stdout, result.stdout
