"""An evaluation run: every question of a labeled set asked of the live index, its answer,
citations and retrieval scored (`metrics`), with one row per question from which every
aggregate can be recomputed.

Questions are asked through an `Answers`: in this process through the query service the CLI
uses, the response cache bypassed; or through a running API (`POST /v1/query`, then
`POST /v1/search` for the ranking), timing the HTTP round trip. The API offers no way to
bypass its cache: a row says whether its answer was `cached` (flush it first with
`POST /v1/admin/cache/flush` to time generation). Gates and judged metrics read the
`EvaluationRun` this returns."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

import httpx
from pydantic import BaseModel

from rag_core.domain.answers import NO_ANSWER, Answerer, Generation
from rag_core.domain.schemas import Hit, QueryRequest, QueryResponse, SearchRequest, SearchResponse
from rag_core.evaluation.judging import JudgedQuestion, JudgedRow, JudgedRun
from rag_core.evaluation.labeled_sets import LabeledQuestion
from rag_core.evaluation.metrics import (
    RETRIEVAL_DEPTH,
    Aggregates,
    Frozen,
    QuestionScores,
    document_ranking,
    marked_sentences,
    score_question,
    summarize,
    supports,
)
from rag_core.flows.querying import QueryService


@dataclass(frozen=True)
class Answered:
    """What one question got: the response and its wall time, the top `RETRIEVAL_DEPTH`
    chunks retrieved for it, and the passages the answerer was given."""

    response: QueryResponse
    latency_seconds: float
    ranked: list[Hit]
    context: list[Hit]


class Answers(Protocol):
    def answer(self, question: str) -> Answered: ...


class _PassageRecorder:
    """An answerer that notes the passages it is given before its inner answerer answers."""

    def __init__(self, inner: Answerer):
        self.inner = inner
        self.name = inner.name
        self.passages: list[Hit] = []

    def generate(self, question: str, hits: list[Hit]) -> Generation:
        self.passages = hits
        return self.inner.generate(question, hits)

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str | Generation]:
        self.passages = hits
        return self.inner.stream(question, hits)


class InProcessAnswers:
    """Answers from `service`'s retriever and answerer, never from its cache; the ranking
    from a search of its own, which is not timed."""

    def __init__(self, service: QueryService):
        self._recorder = _PassageRecorder(service.answerer)
        self._service = QueryService(service.retriever, self._recorder, service.cache)

    def answer(self, question: str) -> Answered:
        self._recorder.passages = []  # the answerer is not called when nothing is relevant
        started = perf_counter()
        response = self._service.query(QueryRequest(question=question), use_cache=False)
        latency = perf_counter() - started
        ranked = self._service.retriever.search(question, RETRIEVAL_DEPTH)
        return Answered(response, latency, ranked, self._recorder.passages)


class ApiAnswers:
    """Answers from the API `client` is based at (`httpx.Client(base_url=…)`), as the
    development identity (RAG_AUTH_MODE=dev: no token is sent). The passages the answerer was
    given are not in the response: they are taken to be the first `top_k` of the ranking (the
    same search), none when the answer is the platform's nothing-relevant `NO_ANSWER`."""

    def __init__(self, client: httpx.Client):
        self._client = client

    def answer(self, question: str) -> Answered:
        request = QueryRequest(question=question)
        started = perf_counter()
        answered = self._post("/v1/query", request)
        latency = perf_counter() - started
        response = QueryResponse.model_validate_json(answered)
        search = SearchRequest(query=question, top_k=RETRIEVAL_DEPTH)
        ranked = SearchResponse.model_validate_json(self._post("/v1/search", search)).hits
        context = [] if response.answer == NO_ANSWER else ranked[: request.top_k]
        return Answered(response, latency, ranked, context)

    def _post(self, path: str, request: BaseModel) -> bytes:
        reply = self._client.post(path, json=request.model_dump(mode="json", exclude_none=True))
        reply.raise_for_status()
        return reply.content


class CitationRow(Frozen):
    n: int
    source_uri: str
    chunk_id: str
    supported: bool


class QuestionResult(Frozen):
    id: str
    question: str
    answerable: bool
    answer: str
    generator: str
    cached: bool
    citations: list[CitationRow]
    documents: list[str]  # the retrieved ranking, best first
    context: list[str]  # the passages the answerer was given
    scores: QuestionScores
    judged: JudgedQuestion | None = None  # scored by a judge model (`with_judgement`)


class EvaluationRun(Frozen):
    aggregates: Aggregates
    currency: str
    questions: list[QuestionResult]


def evaluate(
    questions: Sequence[LabeledQuestion],
    answers: Answers,
    *,
    progress: Callable[[Sequence[LabeledQuestion]], Iterable[LabeledQuestion]] = iter,
) -> EvaluationRun:
    """Ask every question, in order, and score it; `progress` wraps the questions (a
    progress bar)."""
    results, currency = [], "GBP"
    for question in progress(questions):
        answered = answers.answer(question.question)
        results.append(scored(question, answered))
        currency = answered.response.usage.currency
    return EvaluationRun(
        aggregates=summarize([result.scores for result in results]),
        currency=currency,
        questions=results,
    )


def scored(question: LabeledQuestion, answered: Answered) -> QuestionResult:
    response = answered.response
    passages = {hit.chunk_id: hit.text for hit in [*answered.ranked, *answered.context]}
    citing = marked_sentences(response.answer)
    citations = [
        CitationRow(
            n=citation.n,
            source_uri=citation.source_uri,
            chunk_id=citation.chunk_id,
            supported=supports(
                passages.get(citation.chunk_id, citation.snippet),
                sentences=citing.get(citation.n, []),
                facts=question.facts,
            ),
        )
        for citation in response.citations
    ]
    documents = document_ranking([hit.source_uri for hit in answered.ranked])
    scores = score_question(
        question,
        answer=response.answer,
        documents=documents,
        context=[hit.text for hit in answered.context],
        cited_sources=[citation.source_uri for citation in citations],
        supported_citations=[citation.supported for citation in citations],
        latency_seconds=answered.latency_seconds,
        prompt_tokens=response.usage.prompt_tokens,
        completion_tokens=response.usage.completion_tokens,
        cost=response.usage.cost,
    )
    return QuestionResult(
        id=question.id,
        question=question.question,
        answerable=question.answerable,
        answer=response.answer,
        generator=response.generator,
        cached=response.cached,
        citations=citations,
        documents=documents,
        context=[hit.text for hit in answered.context],
        scores=scores,
    )


def judged_rows(run: EvaluationRun, questions: Sequence[LabeledQuestion]) -> list[JudgedRow]:
    """What a judge reads of each of the run's answers, with its question's facts."""
    facts = {question.id: tuple(question.facts) for question in questions}
    return [
        JudgedRow(id=result.id, question=result.question, answer=result.answer,
                  context=tuple(result.context), facts=facts.get(result.id, ()))
        for result in run.questions
    ]  # fmt: skip


def with_judgement(run: EvaluationRun, judgement: JudgedRun) -> EvaluationRun:
    """The run with the judge's scores: in its aggregates and on each question's row."""
    judged = {question.id: question for question in judgement.questions}
    aggregates = run.aggregates.model_copy(
        update={
            "faithfulness": judgement.faithfulness,
            "answer_relevancy": judgement.answer_relevancy,
            "judge_agreement": judgement.judge_agreement,
        }
    )
    rows = [result.model_copy(update={"judged": judged.get(result.id)}) for result in run.questions]
    return run.model_copy(update={"aggregates": aggregates, "questions": rows})
