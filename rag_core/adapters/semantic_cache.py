"""Semantic cache: a cached answer served to a new question that asks the same thing in other
words, judged by the cosine similarity of the two questions' embeddings. Off by default
(`RAG_SEMANTIC_CACHE`): a false hit serves the answer to another question, and
docs/benchmarks.md measures how often that happens at each threshold.

It keeps nothing of its own outside the response cache's store, so whatever reaches the exact
cache reaches it too:

- Questions are grouped in one *bucket* per everything an answer depends on but the question
  (filters, access groups, top_k, retrieval mode, reranker, generator, index and index
  version): a question only meets questions asked under the same conditions, so another
  group's, other filters' or an older index version's never match.
- A bucket lists, per question, its embedding, the exact-cache key of its answer, when that
  answer expires, and the documents and chunks the answer was built from. The answer itself
  stays in the exact cache and is read from there on a match: an answer erased, flushed or
  expired is never served, whatever bucket still points at it.
- A bucket is stored with the response cache's TTL, filed under the chunk ids of all its
  answers, and names their doc and chunk ids in its value, so erasure's `forget(chunk_ids)`
  and `entries_naming` delete it along with the answers (and the disk store zeroes it).
- Embeddings are stored as integers (each component times 10,000): the bucket holds no words of the
  questions, only digits, ids and keys.

Buckets are read, changed and written back without a lock: two replicas answering at once can
drop one another's question from a bucket, which costs a later hit, never a wrong answer."""

import json
import time
from collections.abc import Iterable
from typing import Any, TypedDict

import numpy as np

from rag_core.adapters.cache import ResponseCache, cache_key
from rag_core.domain.schemas import ChunkReference
from rag_core.telemetry import CACHE_REQUESTS

# The most recent questions a bucket keeps: each lookup reads and compares all of them, and
# each new answer rewrites the bucket (about 2.5 KB a question).
BUCKET_QUESTIONS = 64
VECTOR_SCALE = 10_000  # an embedding component rounded to 1e-4: cosines move by about 1e-5


class _Source(TypedDict):
    doc_id: str
    chunk_id: str


class _Question(TypedDict):
    key: str
    expires: float
    vector: list[int]
    sources: list[_Source]


class SemanticCache:
    def __init__(self, store: ResponseCache, similarity: float, ttl_seconds: int):
        """`store`: the response cache's store, uncounted (its lookups are counted here, as
        the `semantic` cache's hits and misses, not as the exact cache's)."""
        self._store, self._similarity, self._ttl = store, similarity, ttl_seconds

    @staticmethod
    def bucket(conditions: dict[str, Any]) -> str:
        """The bucket of the questions asked under these conditions (everything the exact
        cache key holds but the question)."""
        return cache_key("semantic", **conditions)

    def find(self, bucket: str, vector: np.ndarray) -> str | None:
        """The stored answer of the bucket's question most similar to `vector` (a normalized
        embedding) at or above the threshold whose answer is still cached, else None."""
        for key in self._matches(bucket, vector):
            answer = self._store.get(key)
            if answer is not None:
                CACHE_REQUESTS.labels("semantic", "hit").inc()
                return answer
        CACHE_REQUESTS.labels("semantic", "miss").inc()
        return None

    def remember(
        self, bucket: str, vector: np.ndarray, key: str, context: Iterable[ChunkReference]
    ) -> None:
        """Add the question (its embedding) whose answer was just cached under `key`, built
        from `context`; the bucket keeps its most recent live questions."""
        question: _Question = {
            "key": key,
            "expires": round(time.time() + self._ttl, 3),
            "vector": [round(float(value) * VECTOR_SCALE) for value in vector],
            "sources": [{"doc_id": hit.doc_id, "chunk_id": hit.chunk_id} for hit in context],
        }
        kept = [other for other in self._live(bucket) if other["key"] != key]
        questions = [*kept, question][-BUCKET_QUESTIONS:]
        refs = {source["chunk_id"] for other in questions for source in other["sources"]}
        value = json.dumps({"questions": questions}, separators=(",", ":"))
        self._store.set(bucket, value, refs)

    def _matches(self, bucket: str, vector: np.ndarray) -> list[str]:
        """Answer keys of the bucket's questions at or above the threshold, most similar first."""
        questions = self._live(bucket)
        if not questions:
            return []
        stored = np.asarray([question["vector"] for question in questions], dtype=np.float32)
        similarities = (stored / VECTOR_SCALE) @ vector
        ranked = np.argsort(-similarities, kind="stable")
        return [questions[i]["key"] for i in ranked if similarities[i] >= self._similarity]

    def _live(self, bucket: str) -> list[_Question]:
        stored = self._store.get(bucket)
        if stored is None:
            return []
        now = time.time()
        questions: list[_Question] = json.loads(stored)["questions"]
        return [question for question in questions if question["expires"] > now]
