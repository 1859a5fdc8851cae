"""Scores of one answered question against its labels, and their summary over a run. Pure:
the runner gathers what was answered and retrieved, these functions judge it.

Retrieval is judged by document: the top `RETRIEVAL_DEPTH` chunks collapsed to their documents
in order of first appearance (as bench/retrieval_quality.py ranks pages), a document relevant
when it is one of the question's sources. Facts are compared case-insensitively with runs of
whitespace collapsed. A score that does not apply to a question is None (retrieval and cited
gold of an unanswerable question, fact and context recall without facts, citation precision
without citations), and a summary averages each score over the questions it applies to.
"""

import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from rag_core.evaluation.labeled_sets import LabeledQuestion

RETRIEVAL_DEPTH = 10
# Share of an answer sentence's terms a cited passage must hold to support that sentence.
SUPPORTING_OVERLAP = 0.6
# How the platform's answerers abstain: `NO_ANSWER` ("I don't know: nothing in the index…")
# when nothing relevant was retrieved, and "I don't know." as the LLM's prompt asks.
_ABSTENTIONS = ("i don't know", "i do not know")
# A group of `[n]` markers, and the end of a sentence.
_MARKERS = re.compile(r"(?:\s*\[\d+\])+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TERM = re.compile(r"\w{3,}|\d+")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetrievalScores(Frozen):
    recall_at_1: float
    recall_at_5: float
    mrr_at_10: float
    ndcg_at_10: float


class QuestionScores(Frozen):
    """Everything measured of one question; the run's `Aggregates` are computed from these."""

    retrieval: RetrievalScores | None
    context_recall: float | None
    fact_recall: float | None
    abstained: bool
    abstention_correct: bool
    cited_gold: bool | None
    citation_precision: float | None
    latency_seconds: float
    prompt_tokens: int
    completion_tokens: int
    cost: float


class Aggregates(Frozen):
    questions: int
    answerable: int
    recall_at_1: float | None
    recall_at_5: float | None
    mrr_at_10: float | None
    ndcg_at_10: float | None
    context_recall: float | None
    fact_recall: float | None
    abstention_accuracy: float | None
    cited_gold_rate: float | None
    citation_precision: float | None
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_per_1000_queries: float
    # Judged by a model (`judging`), None unless the run was judged; `judge_agreement` is how
    # often the judge ranked a true answer above its corrupted copy (0.5 is chance).
    faithfulness: float | None = None
    answer_relevancy: float | None = None
    judge_agreement: float | None = None


def normalized(text: str) -> str:
    """Text as facts are compared: case folded, runs of whitespace one space."""
    return " ".join(text.casefold().split())


def holds_fact(text: str, facts: Sequence[str]) -> bool:
    found = normalized(text)
    return any(normalized(fact) in found for fact in facts)


def fact_share(text: str, facts: Sequence[str]) -> float | None:
    """The share of `facts` that `text` states; None without facts."""
    if not facts:
        return None
    return sum(holds_fact(text, [fact]) for fact in facts) / len(facts)


def abstains(answer: str) -> bool:
    """Whether an answer says it does not know (a typographic apostrophe counts too)."""
    return normalized(answer).replace("\u2019", "'").startswith(_ABSTENTIONS)


def document_ranking(chunk_sources: Sequence[str]) -> list[str]:
    """The documents (`source_uri`) of the top `RETRIEVAL_DEPTH` chunks, best first, each
    once, ranked by its first chunk."""
    return list(dict.fromkeys(chunk_sources[:RETRIEVAL_DEPTH]))


def retrieval_scores(question: LabeledQuestion, documents: Sequence[str]) -> RetrievalScores | None:
    """Document-level scores of a ranking; None for an unanswerable question. A question's
    sources are alternatives (any of them answers it), so every score follows the rank of
    the first gold document: recall@k whether it is among the first k, MRR its reciprocal,
    nDCG@10 with the one relevant document the ideal ranking puts first."""
    if not question.answerable:
        return None
    ranks = (n for n, doc in enumerate(documents[:RETRIEVAL_DEPTH], 1) if question.is_gold(doc))
    first = next(ranks, None)
    return RetrievalScores(
        recall_at_1=float(first == 1),
        recall_at_5=float(first is not None and first <= 5),
        mrr_at_10=1 / first if first else 0.0,
        ndcg_at_10=1 / math.log2(first + 1) if first else 0.0,
    )


def marked_sentences(answer: str) -> dict[int, list[str]]:
    """The sentence each `[n]` marker is attached to, by n: the last sentence of the text
    before the marker's group, back to the previous group. Both answer styles: extractive
    `Sentence. [1]` and the LLM's `Sentence [1].`."""
    sentences: dict[int, list[str]] = {}
    start = 0
    for group in _MARKERS.finditer(answer):
        before = answer[start : group.start()].lstrip(" .!?\n")
        sentence = _SENTENCE_END.split(before.strip())[-1]
        for n in re.findall(r"\d+", group[0]):
            sentences.setdefault(int(n), []).append(sentence)
        start = group.end()
    return sentences


def _terms(text: str) -> set[str]:
    return set(_TERM.findall(text.casefold()))


def supports(passage: str, *, sentences: Sequence[str], facts: Sequence[str]) -> bool:
    """Whether a cited passage backs its citation, whichever passage the answerer attributed
    the sentence to: it holds one of the question's facts, or `SUPPORTING_OVERLAP` of the
    terms of a sentence that cites it."""
    if holds_fact(passage, facts):
        return True
    held = _terms(passage)
    for sentence in sentences:
        terms = _terms(sentence)
        if terms and len(terms & held) / len(terms) >= SUPPORTING_OVERLAP:
            return True
    return False


def score_question(
    question: LabeledQuestion,
    *,
    answer: str,
    documents: Sequence[str],
    context: Sequence[str],
    cited_sources: Sequence[str],
    supported_citations: Sequence[bool],
    latency_seconds: float,
    prompt_tokens: int,
    completion_tokens: int,
    cost: float,
) -> QuestionScores:
    """`documents`: the retrieved ranking (`document_ranking`); `context`: the passages the
    answerer was given; `cited_sources` and `supported_citations`: per citation, its
    document and whether its passage `supports` it."""
    abstained = abstains(answer)
    return QuestionScores(
        retrieval=retrieval_scores(question, documents),
        context_recall=fact_share("\n\n".join(context), question.facts),
        fact_recall=fact_share(answer, question.facts),
        abstained=abstained,
        abstention_correct=abstained == (not question.answerable),
        cited_gold=any(map(question.is_gold, cited_sources)) if question.answerable else None,
        citation_precision=mean(list(map(float, supported_citations))),
        latency_seconds=latency_seconds,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
    )


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that apply (not None); None when none does."""
    applicable = [value for value in values if value is not None]
    return sum(applicable) / len(applicable) if applicable else None


def percentile(values: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile: the smallest value at least `percent`% of values are at or
    below; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def summarize(scores: Sequence[QuestionScores]) -> Aggregates:
    retrieval = [score.retrieval for score in scores if score.retrieval is not None]
    latencies = [score.latency_seconds for score in scores]
    costs = [score.cost for score in scores]
    return Aggregates(
        questions=len(scores),
        answerable=len(retrieval),
        recall_at_1=mean([r.recall_at_1 for r in retrieval]),
        recall_at_5=mean([r.recall_at_5 for r in retrieval]),
        mrr_at_10=mean([r.mrr_at_10 for r in retrieval]),
        ndcg_at_10=mean([r.ndcg_at_10 for r in retrieval]),
        context_recall=mean([score.context_recall for score in scores]),
        fact_recall=mean([score.fact_recall for score in scores]),
        abstention_accuracy=mean([float(score.abstention_correct) for score in scores]),
        cited_gold_rate=mean([_float(score.cited_gold) for score in scores]),
        citation_precision=mean([score.citation_precision for score in scores]),
        latency_p50_seconds=percentile(latencies, 50),
        latency_p95_seconds=percentile(latencies, 95),
        prompt_tokens=sum(score.prompt_tokens for score in scores),
        completion_tokens=sum(score.completion_tokens for score in scores),
        cost_per_1000_queries=1000 * sum(costs) / len(costs) if costs else 0.0,
    )


def _float(flag: bool | None) -> float | None:
    return None if flag is None else float(flag)
