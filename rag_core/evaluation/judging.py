"""Judged metrics: an OpenAI-compatible model (the configured `llm_*`) scores answers where
the labels cannot, with the definitions ragas uses.

- faithfulness: the share of the answer's claims its context supports. The judge lists the
  answer's claims, then says yes or no to each claim against the passages the answerer was
  given.
- answer relevancy: the mean cosine similarity, by the platform's embedder, between the
  question and `generated_questions` questions the judge writes for the answer.

Both are None where they do not apply: an abstention or an empty answer, and faithfulness
without passages. A judge call that fails (timeout, unreachable, unparseable reply) leaves its
score None and says why in `failures`, and the run goes on.

ragas itself is not used: under the project's pins it resolves only to ragas 0.3.1 (later
0.3 releases need instructor, which caps rich and jiter below the pinned versions), 0.3.1 does
not import with the langchain-community it resolves to, and with an older langchain-community
its few-shot prompts made the packaged 0.5B judge call a faithful one-claim answer "unrelated"
to its context.

A small judge is weak, so each run is calibrated: every judged answer that states one of its
question's facts is also judged with that fact replaced by a plausible wrong one
(`corrupted`), and `judge_agreement` is the share of such pairs where the true answer is
judged more faithful than the corrupted one, a tie counting half: a judge that cannot tell
them apart scores 0.5, whichever way it leans.
"""

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from time import perf_counter
from typing import TypeVar

import numpy as np
import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import Field

from rag_core import services
from rag_core.evaluation.metrics import Frozen, abstains, mean
from rag_core.settings import Settings

# The context a judge reads fits the local model's 4096-token window beside the prompt.
MAX_CONTEXT_CHARS = 6000
T = TypeVar("T")
_NUMBER = re.compile(r"\d+")
_MARKER = re.compile(r"\s*\[\d+\]")
# A list item's bullet or number: "- ", "* ", "1. ", "2) ".
_ITEM_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")

# Small models follow a shown format far better than a described one (see domain/prompting).
_CLAIMS_SYSTEM = (
    "You split an answer into the short factual claims it makes, one claim per line, each a "
    "complete sentence. Write nothing else."
)
_CLAIMS_EXAMPLE = (
    "Answer: Backups are kept for 30 days by default; older ones are deleted at night.",
    "Backups are kept for 30 days by default.\nOlder backups are deleted at night.",
)
_VERDICT_SYSTEM = (
    "You check a claim against a context. Reply yes if the context states or directly implies "
    "the claim, otherwise no. Reply with one word."
)
_VERDICT_EXAMPLE_CONTEXT = "backup_days (integer): how many days backups are kept; 30 by default."
_VERDICT_EXAMPLES = (
    ("Backups are kept for 30 days by default.", "yes"),
    ("Backups are kept for 60 days by default.", "no"),
)
_QUESTIONS_SYSTEM = (
    "You write the questions an answer replies to, one question per line. Write nothing else."
)
_QUESTIONS_EXAMPLE = (
    "Write 2 questions this answer replies to.\nAnswer: Backups are kept for 30 days by default.",
    "How long are backups kept?\nFor how many days does the server keep backups?",
)


class JudgedRow(Frozen):
    """What the judge reads of one answered question: `context` is the passages the
    answerer was given, `facts` its label (`LabeledQuestion.facts`)."""

    id: str
    question: str
    answer: str
    context: tuple[str, ...]
    facts: tuple[str, ...] = ()


class JudgedQuestion(Frozen):
    """A question's judged scores, None where they do not apply (an abstention has none)."""

    id: str
    faithfulness: float | None = None
    answer_relevancy: float | None = None
    # The calibration pair: the answer with one fact made wrong, and its faithfulness.
    corrupted_answer: str | None = None
    corrupted_faithfulness: float | None = None
    # Why a score that applies is None, by score name.
    failures: dict[str, str] = Field(default_factory=dict)
    seconds: float = 0.0


class JudgedRun(Frozen):
    faithfulness: float | None
    answer_relevancy: float | None
    judge_agreement: float | None
    calibration_pairs: int
    questions: list[JudgedQuestion]


class JudgeFailure(Exception):
    """A judge reply that cannot be read as what was asked."""


def wrong_fact(fact: str, *, decoys: Sequence[str]) -> str | None:
    """A plausible wrong value for `fact`: with numbers, each number's leading digit raised by
    one (5432 → 6432, TLSv1.2 → TLSv2.3, 9 → 10); without, another fact without numbers (a
    different option name) from `decoys`, of as many words if there is one, the same one for
    the same fact and decoys; None when there is none."""
    if _NUMBER.search(fact):
        return _NUMBER.sub(lambda number: f"{int(number[0][0]) + 1}{number[0][1:]}", fact)
    others = sorted({decoy for decoy in decoys if not _NUMBER.search(decoy)} - {fact})
    alike = [other for other in others if len(other.split()) == len(fact.split())] or others
    return alike[zlib.crc32(fact.encode()) % len(alike)] if alike else None


def corrupted(answer: str, facts: Sequence[str], *, decoys: Sequence[str] = ()) -> str | None:
    """`answer` with the first of `facts` it states (case-insensitively, any spacing) replaced
    everywhere by a `wrong_fact`; decoys that are among `facts` are not used. None when the
    answer states none of them or none has a wrong value."""
    wrong_pool = [decoy for decoy in decoys if decoy.casefold() not in _folded(facts)]
    for fact in facts:
        pattern = re.compile(r"\s+".join(map(re.escape, fact.split())), re.IGNORECASE)
        wrong = wrong_fact(fact, decoys=wrong_pool)
        if wrong is not None and pattern.search(answer):
            return pattern.sub(wrong.replace("\\", r"\\"), answer)
    return None


def _folded(texts: Sequence[str]) -> set[str]:
    return {text.casefold() for text in texts}


def listed(reply: str) -> list[str]:
    """The items of a one-per-line reply, bullets and numbering removed."""
    items = (_ITEM_MARK.sub("", line).strip() for line in reply.splitlines())
    return [item for item in items if item]


def agreement(pairs: Sequence[tuple[float, float]]) -> float | None:
    """The share of (true, corrupted) faithfulness pairs ranked right, a tie counting half;
    None without pairs."""
    if not pairs:
        return None
    return sum(1.0 if true > wrong else 0.5 if true == wrong else 0.0 for true, wrong in pairs) / (
        len(pairs)
    )


class Judge:
    """Scores answered questions with the model `settings.llm_*` names and the embedder
    `settings` configures. Each judge call may take `call_timeout_seconds`; an answer of n
    claims takes 2 + n calls, and its calibration copy 1 + n more."""

    def __init__(
        self,
        settings: Settings,
        *,
        call_timeout_seconds: float = 120.0,
        max_claims: int = 6,
        generated_questions: int = 3,
    ):
        if not settings.llm_base_url:
            raise ValueError("judging needs a model: set RAG_LLM_BASE_URL")
        self._model = settings.llm_model
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            timeout=call_timeout_seconds,
            max_retries=0,
        )
        self._embedder = services.embedder(settings)
        self._max_claims = max_claims
        self._generated_questions = generated_questions

    def score(
        self,
        rows: Sequence[JudgedRow],
        *,
        progress: Callable[[Sequence[JudgedRow]], Iterable[JudgedRow]] = iter,
    ) -> JudgedRun:
        """Judge every row, in order; wrong option names for the calibration copies are
        drawn from the facts of all `rows` (`wrong_fact`)."""
        decoys = [fact for row in rows for fact in row.facts]
        judged = [self._judged(row, decoys) for row in progress(rows)]
        pairs = [
            (question.faithfulness, question.corrupted_faithfulness)
            for question in judged
            if question.faithfulness is not None and question.corrupted_faithfulness is not None
        ]
        return JudgedRun(
            faithfulness=mean([question.faithfulness for question in judged]),
            answer_relevancy=mean([question.answer_relevancy for question in judged]),
            judge_agreement=agreement(pairs),
            calibration_pairs=len(pairs),
            questions=judged,
        )

    def _judged(self, row: JudgedRow, decoys: Sequence[str]) -> JudgedQuestion:
        started = perf_counter()
        answer = _MARKER.sub("", row.answer).strip()
        if not answer or abstains(answer):
            return JudgedQuestion(id=row.id)
        context = "\n\n".join(row.context)[:MAX_CONTEXT_CHARS]
        wrong = corrupted(answer, row.facts, decoys=decoys) if context else None
        failures: dict[str, str] = {}

        def attempt(name: str, measure: Callable[[], T]) -> T | None:
            try:
                return measure()
            except (JudgeFailure, openai.APIError) as failure:
                failures[name] = f"{type(failure).__name__}: {failure}"
                return None

        def faithfulness(name: str, claims: list[str] | None) -> float | None:
            return attempt(name, lambda: self.supported_share(claims, context)) if claims else None

        relevancy = attempt("answer_relevancy", lambda: self.answer_relevancy(row.question, answer))
        claims = attempt("faithfulness", lambda: self.claims(answer)) if context else None
        wrong_claims = (
            attempt("corrupted_faithfulness", lambda: self.claims(wrong)) if wrong else None
        )
        # Both answers' claims are checked after both are listed: the server reads the context
        # once for all of them (llama.cpp reuses the prompt prefix calls have in common).
        return JudgedQuestion(
            id=row.id,
            faithfulness=faithfulness("faithfulness", claims),
            answer_relevancy=relevancy,
            corrupted_answer=wrong,
            corrupted_faithfulness=faithfulness("corrupted_faithfulness", wrong_claims),
            failures=failures,
            seconds=perf_counter() - started,
        )

    def claims(self, answer: str) -> list[str]:
        """The answer's claims as the judge lists them, at most `max_claims`."""
        reply = self._reply(
            _CLAIMS_SYSTEM,
            [_CLAIMS_EXAMPLE],
            f"Answer: {answer}",
            max_tokens=60 * self._max_claims,
        )
        claims = listed(reply)[: self._max_claims]
        if not claims:
            raise JudgeFailure(f"no claims in the judge's reply {reply!r}")
        return claims

    def supported_share(self, claims: Sequence[str], context: str) -> float:
        """Faithfulness: the share of `claims` the judge finds supported by the context."""
        return sum(self.supported(claim, context) for claim in claims) / len(claims)

    def supported(self, claim: str, context: str) -> bool:
        """Whether the judge says yes; a reply that is neither yes nor no fails."""
        shots = [
            (f"Context: {_VERDICT_EXAMPLE_CONTEXT}\n\nClaim: {example}", verdict)
            for example, verdict in _VERDICT_EXAMPLES
        ]
        # The context before the claim, so that the calls for one context share a prefix.
        reply = self._reply(
            _VERDICT_SYSTEM, shots, f"Context: {context}\n\nClaim: {claim}", max_tokens=3
        )
        verdict = reply.strip().casefold()
        if not verdict.startswith(("yes", "no")):
            raise JudgeFailure(f"neither yes nor no: {reply!r}")
        return verdict.startswith("yes")

    def answer_relevancy(self, question: str, answer: str) -> float:
        """The mean cosine similarity between the question and the judge's questions for the
        answer (ragas' answer relevancy, less its noncommittal check: abstentions are not
        judged)."""
        count = self._generated_questions
        reply = self._reply(
            _QUESTIONS_SYSTEM,
            [_QUESTIONS_EXAMPLE],
            f"Write {count} questions this answer replies to.\nAnswer: {answer}",
            max_tokens=40 * count,
        )
        generated = listed(reply)[:count]
        if not generated:
            raise JudgeFailure(f"no questions in the judge's reply {reply!r}")
        vectors = self._embedder.embed([question, *generated])  # normalized
        return float(np.mean(vectors[1:] @ vectors[0]))

    def _reply(
        self, system: str, shots: Sequence[tuple[str, str]], prompt: str, *, max_tokens: int
    ) -> str:
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
        for shown, reply in shots:
            messages += [
                {"role": "user", "content": shown},
                {"role": "assistant", "content": reply},
            ]
        messages.append({"role": "user", "content": prompt})
        completion = self._client.chat.completions.create(
            model=self._model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=0,
        )
        return completion.choices[0].message.content or ""
