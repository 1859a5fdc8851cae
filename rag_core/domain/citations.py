"""Citations: the numbered passages an answer rests on. A model's own `[n]` markers are not
trusted; each sentence is attributed to the passage that holds its terms."""

import math
import re

from rag_core.domain.schemas import Citation, Hit

SNIPPET_CHARS = 300
UNSUPPORTED_NOTE = "(No statement in this answer is supported by a cited source.)"
_MARKER = re.compile(r"\s*\[(\d+)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_TERM = re.compile(r"[a-z0-9_]{3,}|\d+")


def citation_for(n: int, hit: Hit) -> Citation:
    return Citation(n=n, snippet=hit.text[:SNIPPET_CHARS], **hit.model_dump(exclude={"text"}))


def _terms(text: str) -> set[str]:
    return set(_TERM.findall(text.lower()))


def _best_support(sentence: str, hits: list[Hit]) -> int | None:
    """The passage (1-based) sharing the most weight of the sentence's terms, rare terms
    (numbers, identifiers) weighing most, if it holds at least half of that weight."""
    passages = [_terms(hit.text) for hit in hits]
    terms = _terms(sentence)
    weight = {t: math.log(1 + len(hits) / (1 + sum(t in p for p in passages))) for t in terms}
    total = sum(weight.values())
    if not total:
        return None
    scores = [sum(weight[t] for t in terms & passage) for passage in passages]
    best = max(range(len(hits)), key=scores.__getitem__)
    return best + 1 if scores[best] >= 0.5 * total else None


def supported_answer(text: str, hits: list[Hit]) -> tuple[str, list[int]]:
    """Re-attribute every sentence to the passage that supports it, whatever number the model
    wrote (small models cite the wrong block, or none): markers naming no passage, or one that
    does not hold the sentence, are replaced or dropped. Returns the answer and the passages
    it cites; an answer left with no supported citation says so."""
    if text.strip().lower().startswith("i don't know"):
        return text.strip(), []
    sentences = [_MARKER.sub("", s).strip() for s in _SENTENCE.split(text.strip())]
    cited: set[int] = set()
    parts = []
    for sentence in filter(None, sentences):
        passage = _best_support(sentence, hits)
        if passage is None:
            parts.append(sentence)
            continue
        cited.add(passage)
        body, end = (sentence[:-1], sentence[-1]) if sentence[-1] in ".!?" else (sentence, "")
        parts.append(f"{body} [{passage}]{end}")
    answer = " ".join(parts)
    if not cited:
        answer = f"{answer}\n\n{UNSUPPORTED_NOTE}"
    return answer, sorted(cited)
