"""Rerankers: reorder retrieved hits by a model that reads query and chunk together.

`none` keeps the fused order; `cross-encoder` runs a sentence-transformers CrossEncoder from a
folder on disk (bge-reranker, ms-marco-MiniLM, ...); `cohere` calls Cohere's Rerank API (v2).
"""

from typing import Protocol

import httpx

from rag_core.domain.schemas import Hit
from rag_core.settings import Settings


class Reranker(Protocol):
    name: str

    def rerank(self, query: str, hits: list[Hit], top_k: int) -> list[Hit]: ...


def _reordered(hits: list[Hit], scores: list[tuple[int, float]], top_k: int) -> list[Hit]:
    """Hits by descending reranker score, which becomes their `score`."""
    best = sorted(scores, key=lambda item: -item[1])[:top_k]
    return [hits[index].model_copy(update={"score": round(score, 6)}) for index, score in best]


class NoReranker:
    name = "none"

    def rerank(self, query: str, hits: list[Hit], top_k: int) -> list[Hit]:
        return hits[:top_k]


class CrossEncoderReranker:
    name = "cross-encoder"

    def __init__(self, model_dir: str):
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(model_dir, device="cpu")

    def rerank(self, query: str, hits: list[Hit], top_k: int) -> list[Hit]:
        if not hits:
            return []
        scores = self._model.predict([(query, hit.text) for hit in hits], convert_to_numpy=True)
        return _reordered(hits, [(i, float(s)) for i, s in enumerate(scores)], top_k)


class CohereReranker:
    """Cohere Rerank over HTTP: POST {base}/v2/rerank {model, query, documents, top_n}."""

    name = "cohere"

    def __init__(self, api_key: str, model: str, base_url: str, timeout: float = 10.0):
        self._client = httpx.Client(
            base_url=base_url, timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}
        )
        self._model = model

    def rerank(self, query: str, hits: list[Hit], top_k: int) -> list[Hit]:
        if not hits:
            return []
        response = self._client.post(
            "/v2/rerank",
            json={
                "model": self._model,
                "query": query,
                "documents": [hit.text for hit in hits],
                "top_n": top_k,
            },
        )
        response.raise_for_status()
        results = response.json()["results"]
        return _reordered(hits, [(r["index"], r["relevance_score"]) for r in results], top_k)


def build_reranker(settings: Settings) -> Reranker:
    if settings.reranker == "cross-encoder":
        if not settings.reranker_model:
            raise ValueError("RAG_RERANKER=cross-encoder needs RAG_RERANKER_MODEL (a folder)")
        return CrossEncoderReranker(settings.reranker_model)
    if settings.reranker == "cohere":
        if settings.cohere_api_key is None:
            raise ValueError("RAG_RERANKER=cohere needs RAG_COHERE_API_KEY")
        return CohereReranker(
            settings.cohere_api_key.get_secret_value(),
            settings.reranker_model or "rerank-v3.5",
            settings.cohere_base_url,
        )
    return NoReranker()
