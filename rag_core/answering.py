"""Extractive answers: the retrieved sentences closest to the question, each cited.

This is the answerer that needs no language model; generation by an LLM replaces it when
one is configured, and it stays as the fallback.
"""

import re

import numpy as np

from rag_core.retrieval import Retriever
from rag_core.schemas import Citation, Hit, QueryResponse, SearchFilters

EXTRACTIVE = "extractive"
NO_ANSWER = "I don't know: nothing in the index is relevant enough to answer that."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}")
SNIPPET_CHARS = 300


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip().split()) >= 4]


def _citation(n: int, hit: Hit) -> Citation:
    return Citation(n=n, snippet=hit.text[:SNIPPET_CHARS], **hit.model_dump(exclude={"text"}))


class ExtractiveAnswerer:
    def __init__(self, retriever: Retriever, max_sentences: int = 3):
        self.retriever = retriever
        self.max_sentences = max_sentences

    def answer(
        self, question: str, top_k: int, filters: SearchFilters | None = None
    ) -> QueryResponse:
        hits = self.retriever.search(question, top_k, filters)
        floor = self.retriever.settings.min_relevance
        if not any((hit.vector_score or 0.0) >= floor for hit in hits):
            hits = []  # nothing relevant enough: better no answer than a guess
        candidates = [(rank, s) for rank, hit in enumerate(hits) for s in sentences_of(hit.text)]
        if not candidates:
            return QueryResponse(answer=NO_ANSWER, citations=[], generator=EXTRACTIVE)
        embedder = self.retriever.embedder
        question_vector = embedder.embed([question])[0]
        similarity = embedder.embed([s for _, s in candidates]) @ question_vector
        # Rank sentences by similarity, weighted towards better-retrieved chunks.
        weights = np.array([1.0 / (1 + 0.1 * rank) for rank, _ in candidates])
        best = sorted(np.argsort(-(similarity * weights))[: self.max_sentences])
        chosen = [candidates[i] for i in best]
        cited_ranks = sorted({rank for rank, _ in chosen})
        number_of = {rank: n for n, rank in enumerate(cited_ranks, start=1)}
        answer = " ".join(f"{sentence} [{number_of[rank]}]" for rank, sentence in chosen)
        citations = [_citation(number_of[rank], hits[rank]) for rank in cited_ranks]
        return QueryResponse(answer=answer, citations=citations, generator=EXTRACTIVE)
