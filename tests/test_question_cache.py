"""The response cache keys a question by what it asks: case, runs of spacing, Unicode forms and
closing punctuation do not make a new question."""

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from rag_core.adapters.cache import DiskResponseCache
from rag_core.adapters.reranking import NoReranker
from rag_core.domain.answers import Generation
from rag_core.domain.schemas import Hit, QueryRequest
from rag_core.flows.querying import QueryService, question_cache_form
from rag_core.flows.retrieval import Retriever
from rag_core.settings import Settings

VACUUM = Hit(chunk_id="c1", doc_id="d1", version="v", source_uri="file:///sql-vacuum.html",
             title="VACUUM", section="Description", page=None, score=0.5, vector_score=0.9,
             keyword_score=None, text="VACUUM reclaims dead tuples.")  # fmt: skip


class _Index:
    def recent_version(self, max_age: float) -> int:
        return 1


class _CountingRetriever:
    """Always finds the same chunk, and counts how often it was asked to."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.reranker = NoReranker()
        self.index = _Index()
        self.searches = 0

    def search(self, query: str, top_k: int, *args: object, **kwargs: object) -> list[Hit]:
        self.searches += 1
        return [VACUUM]


class _EchoAnswerer:
    name = "echo"

    def generate(self, question: str, hits: list[Hit]) -> Generation:
        return Generation(answer=f"Answer to {question!r}.", citations=[], generator=self.name)

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str | Generation]:
        yield self.generate(question, hits)


@pytest.mark.parametrize(
    "variant",
    ["what is  vacuum", "What is VACUUM", "  what IS\tvacuum ?", "What is VACUUM?!",
     "what is vacuum\u2026", "What is VACUUM\uff1f", "\uff37hat is VACUUM?"],
)  # fmt: skip
def test_variants_of_a_question_share_its_cache_form(variant: str) -> None:
    assert question_cache_form(variant) == question_cache_form("What is VACUUM?")


def test_different_questions_keep_different_cache_forms() -> None:
    forms = {question_cache_form(q) for q in ("What is VACUUM?", "What is VACUUM FULL?", "C++?")}
    assert len(forms) == 3 and question_cache_form("What is C++?") == "what is c++"


def test_a_rephrased_question_is_answered_from_the_cache(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "rag")
    retriever = _CountingRetriever(settings)
    service = QueryService(cast(Retriever, retriever), _EchoAnswerer(), DiskResponseCache(settings))
    first = service.query(QueryRequest(question="What is VACUUM?"))
    again = service.query(QueryRequest(question="what is  vacuum"))
    assert (first.cached, again.cached, retriever.searches) == (False, True, 1)
    assert again.answer == first.answer
    other = service.query(QueryRequest(question="What is VACUUM FULL?"))
    assert not other.cached and retriever.searches == 2
