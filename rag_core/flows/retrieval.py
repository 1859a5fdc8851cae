"""Hybrid retrieval: vector and full-text rankings fused by reciprocal rank, metadata filters
and the caller's access pushed into both index queries, near-duplicate chunks collapsed, then
an optional rerank."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag_core.adapters.embedding import Embedder
from rag_core.adapters.reranking import NoReranker, Reranker
from rag_core.domain.chunk_store import ChunkFilter, ChunkStore, Groups
from rag_core.domain.schemas import Hit, SearchFilters, SearchMode
from rag_core.settings import Settings
from rag_core.telemetry import (
    INPUT_VALUE,
    SPAN_KIND,
    TracedDocument,
    document_attributes,
    stage,
    tracer,
)


def reciprocal_rank_fusion(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Fused score of every id: the sum over rankings of weight / (k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return scores


@dataclass
class _Candidate:
    row: dict[str, Any]
    score: float = 0.0
    vector_score: float | None = None
    keyword_score: float | None = None
    vector: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def hit(self) -> Hit:
        row = self.row
        return Hit(
            chunk_id=row["chunk_id"],
            doc_id=row["doc_id"],
            version=row["version"],
            source_uri=row["source_uri"],
            title=row["title"],
            section=row["section"],
            page=row["page"],
            score=round(self.score, 6),
            vector_score=None if self.vector_score is None else round(self.vector_score, 6),
            keyword_score=None if self.keyword_score is None else round(self.keyword_score, 6),
            text=row["text"],
        )


def _without_near_duplicates(candidates: list[_Candidate], threshold: float) -> list[_Candidate]:
    """Keep the best-ranked of any chunks whose vectors are nearly identical."""
    kept: list[_Candidate] = []
    for candidate in candidates:
        if all(float(candidate.vector @ other.vector) < threshold for other in kept):
            kept.append(candidate)
    return kept


class Retriever:
    def __init__(
        self,
        index: ChunkStore,
        embedder: Embedder,
        settings: Settings,
        reranker: Reranker | None = None,
    ):
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker or NoReranker()

    def search(
        self,
        query: str,
        top_k: int,
        filters: SearchFilters | None = None,
        mode: SearchMode | None = None,
        groups: Groups = None,
    ) -> list[Hit]:
        """The `top_k` best hits, in a retriever span that lists their chunk ids and scores
        (and the query and their text only with `trace_content`)."""
        content = self.settings.trace_content
        with tracer.start_as_current_span("retrieval") as span:
            span.set_attribute(SPAN_KIND, "RETRIEVER")
            if content:
                span.set_attribute(INPUT_VALUE, query)
            with stage("retrieve"):
                chunk_filter = ChunkFilter.of(filters, groups)
                candidates = self._fused(query, chunk_filter, mode or self.settings.retrieval_mode)
                distinct = _without_near_duplicates(candidates, self.settings.dedupe_similarity)
            with stage("rerank") as rerank:
                rerank.set_attributes(
                    {SPAN_KIND: "RERANKER", "reranker.model_name": self.reranker.name,
                     "reranker.top_k": top_k}
                )  # fmt: skip
                hits = self.reranker.rerank(query, [c.hit() for c in distinct], top_k)
            traced = [TracedDocument(hit.chunk_id, hit.score, hit.text) for hit in hits]
            span.set_attributes(document_attributes("retrieval.documents", traced, content=content))
            return hits

    def _fused(self, query: str, chunk_filter: ChunkFilter, mode: SearchMode) -> list[_Candidate]:
        limit = self.settings.candidates
        query_vector = self.embedder.embed_query(query)
        vector_rows = (
            self.index.vector_search(query_vector, limit, chunk_filter) if mode != "keyword" else []
        )
        keyword_rows = (
            self.index.keyword_search(query, limit, chunk_filter) if mode != "vector" else []
        )

        candidates: dict[str, _Candidate] = {}
        for row in [*vector_rows, *keyword_rows]:
            if row["chunk_id"] not in candidates:
                vector = np.asarray(row["vector"], dtype=np.float32)
                candidates[row["chunk_id"]] = _Candidate(
                    row=row, vector=vector, vector_score=float(vector @ query_vector)
                )
        for row in keyword_rows:
            candidates[row["chunk_id"]].keyword_score = float(row["_score"])
        fused = reciprocal_rank_fusion(
            [
                ([row["chunk_id"] for row in vector_rows], self.settings.vector_weight),
                ([row["chunk_id"] for row in keyword_rows], self.settings.keyword_weight),
            ],
            k=self.settings.rrf_k,
        )
        for chunk_id, score in fused.items():
            candidates[chunk_id].score = score
        return sorted(candidates.values(), key=lambda c: -c.score)
