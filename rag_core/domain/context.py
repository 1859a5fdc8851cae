"""Fitting retrieved passages into a prompt's token budget. A model reads every prompt token
before it writes the first answer token, and on a CPU that reading is most of an answer's
wait, so the prompt holds the best-ranked passages that fit, whole; the passage that would
overflow the budget is cut to the sentences around its one that bears most on the question.

Whole passages, not the best sentences wherever they are: picked one by one, sentences lose
what makes them answers (a reference entry's name sits in the line before its default), and
the packaged model's fact recall fell from 0.39 to 0.24 on the labeled set when it read them
(docs/benchmarks.md, "Answer latency").

Tokens are estimated from characters (no tokenizer is loaded in the query path); the ratio is
Qwen2.5's on English reference pages, and other models' tokenizers come within about 15%."""

import math
import re
from collections.abc import Callable, Sequence

from rag_core.domain.schemas import Hit

CHARS_PER_TOKEN = 3.8
# A passage's segments: sentences and the lines a reference page writes without a full stop
# (an entry's name, a list item).
_SEGMENT_END = re.compile(r"(?<=[.!?])\s+|\n+")
# A segment this short (a heading, "port (integer)") is read with the segment after it.
_MIN_SEGMENT_WORDS = 5
# Room worth cutting a passage for; less is left empty.
_MIN_CUT_TOKENS = 40

Scorer = Callable[[str, Sequence[str]], Sequence[float]]
"""The relevance of each segment to the question (higher is more relevant)."""


def estimated_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def segments_of(text: str) -> list[str]:
    """The passage cut into sentences, a short line joined to the one after it."""
    segments: list[str] = []
    pending = ""
    for piece in filter(None, (p.strip() for p in _SEGMENT_END.split(text))):
        pending = f"{pending} {piece}" if pending else piece
        if len(pending.split()) >= _MIN_SEGMENT_WORDS:
            segments.append(pending)
            pending = ""
    if pending:
        segments.append(pending)
    return segments


def model_context(question: str, hits: list[Hit], budget: int | None, score: Scorer) -> list[Hit]:
    """The passages as a model reads them: cut to the context budget, if there is one."""
    return hits if budget is None else fit_to_budget(question, hits, budget, score)


def fit_to_budget(question: str, hits: list[Hit], budget: int, score: Scorer) -> list[Hit]:
    """The hits, in their order, that fit in about `budget` tokens: whole while they fit,
    then the next one cut to fit if there is room enough (the first one always, so a tight
    budget still leaves one passage)."""
    fitted: list[Hit] = []
    room = budget
    for hit in hits:
        cost = estimated_tokens(hit.text)
        if cost <= room:
            fitted.append(hit)
            room -= cost
            continue
        if room >= _MIN_CUT_TOKENS or not fitted:
            fitted.append(_cut(question, hit, room, score))
        break
    return fitted


def _cut(question: str, hit: Hit, room: int, score: Scorer) -> Hit:
    """The hit as its segment most relevant to the question, widened with its neighbours
    (the one before first: it names what the segment speaks of) while they fit in `room`."""
    segments = segments_of(hit.text)
    if not segments:
        return hit
    relevance = score(question, segments)
    first = last = max(range(len(segments)), key=relevance.__getitem__)
    used = estimated_tokens(segments[first])
    while fitting := [
        n
        for n in (first - 1, last + 1)
        if 0 <= n < len(segments) and used + estimated_tokens(segments[n]) + 1 <= room
    ]:
        used += estimated_tokens(segments[fitting[0]]) + 1
        first, last = min(first, fitting[0]), max(last, fitting[0])
    text = " ".join(segments[first : last + 1])
    return hit.model_copy(
        update={
            "text": ("… " if first > 0 else "") + text + (" …" if last + 1 < len(segments) else "")
        }
    )
