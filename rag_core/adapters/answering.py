"""Answers without a language model: `ExtractiveAnswerer` returns the retrieved sentences
closest to the question, each cited. It is the fallback whenever no LLM is configured or
reachable."""

import re
from collections.abc import Iterator

import numpy as np

from rag_core.adapters.embedding import Embedder
from rag_core.domain.answers import NO_ANSWER, Generation
from rag_core.domain.citations import citation_for
from rag_core.domain.schemas import Hit

EXTRACTIVE = "extractive"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}")
# Sentences an extractive answer is chosen from: bounds the model's work and memory per answer.
MAX_CANDIDATES = 64


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip().split()) >= 4]


class ExtractiveAnswerer:
    name = EXTRACTIVE

    def __init__(self, embedder: Embedder, max_sentences: int = 3):
        self.embedder = embedder
        self.max_sentences = max_sentences

    def generate(self, question: str, hits: list[Hit]) -> Generation:
        candidates = [(rank, s) for rank, hit in enumerate(hits) for s in sentences_of(hit.text)]
        candidates = candidates[:MAX_CANDIDATES]  # the best-retrieved hits' sentences
        if not candidates:
            return Generation(answer=NO_ANSWER, citations=[], generator=EXTRACTIVE)
        # One model call per answer, of bounded size: the question with its candidates.
        vectors = self.embedder.embed([question, *(sentence for _, sentence in candidates)])
        similarity = vectors[1:] @ vectors[0]
        # Rank sentences by similarity, weighted towards better-retrieved chunks.
        weights = np.array([1.0 / (1 + 0.1 * rank) for rank, _ in candidates])
        best = sorted(np.argsort(-(similarity * weights))[: self.max_sentences])
        chosen = [candidates[i] for i in best]
        cited_ranks = sorted({rank for rank, _ in chosen})
        number_of = {rank: n for n, rank in enumerate(cited_ranks, start=1)}
        answer = " ".join(f"{sentence} [{number_of[rank]}]" for rank, sentence in chosen)
        citations = [citation_for(number_of[rank], hits[rank]) for rank in cited_ranks]
        return Generation(answer=answer, citations=citations, generator=EXTRACTIVE)

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str | Generation]:
        generation = self.generate(question, hits)
        yield generation.answer
        yield generation
