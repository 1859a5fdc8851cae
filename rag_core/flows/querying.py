"""The query path: cache lookup → retrieve → rerank → generate, each a traced stage, as one
response or as a stream of text deltas closed by the full response."""

import unicodedata
from collections.abc import Iterator

from rag_core.adapters.cache import ResponseCache, cache_key, normalize_question
from rag_core.domain.answers import NO_ANSWER, Answerer, Generation
from rag_core.domain.schemas import Hit, QueryRequest, QueryResponse
from rag_core.flows.retrieval import Groups, Retriever
from rag_core.telemetry import stage

# Marks that end a question without changing what it asks ("What is VACUUM?" and
# "what is  vacuum" are one question).
_CLOSING_MARKS = " .?!"


def question_cache_form(question: str) -> str:
    """The question as the response cache keys it: Unicode-compatible forms unified (a
    full-width question mark is a "?"), case and runs of spacing ignored, closing marks dropped."""
    unified = unicodedata.normalize("NFKC", question)
    return normalize_question(unified.casefold()).rstrip(_CLOSING_MARKS)


class QueryService:
    def __init__(self, retriever: Retriever, answerer: Answerer, cache: ResponseCache):
        self.retriever = retriever
        self.answerer = answerer
        self.cache = cache

    def query(
        self, request: QueryRequest, groups: Groups = None, *, use_cache: bool = True
    ) -> QueryResponse:
        """`groups`: the caller's, which limit what is retrieved and key the cache, so one
        group's answer is never served to another. Without `use_cache` the cache is neither
        read nor filled: the answer is generated afresh (as an evaluation measures it)."""
        key, cached, hits = self._prepare(request, groups, use_cache)
        if cached is not None:
            return cached
        if not hits:
            return self._finish(key, self._no_answer(), hits)
        with stage("generate"):
            return self._finish(key, self.answerer.generate(request.question, hits), hits)

    def stream(self, request: QueryRequest, groups: Groups = None) -> Iterator[str | QueryResponse]:
        """Text deltas as the answer is written, then the complete response."""
        key, cached, hits = self._prepare(request, groups, use_cache=True)
        if cached is not None:
            yield cached.answer
            yield cached
            return
        generation = self._no_answer()
        if hits:
            with stage("generate"):
                for item in self.answerer.stream(request.question, hits):
                    if isinstance(item, Generation):
                        generation = item
                    else:
                        yield item
        else:
            yield generation.answer
        yield self._finish(key, generation, hits)

    def _prepare(
        self, request: QueryRequest, groups: Groups, use_cache: bool
    ) -> tuple[str | None, QueryResponse | None, list[Hit]]:
        """The cache key (None when the cache is bypassed), a cached response if any, else
        the hits relevant enough to use."""
        key = self._key(request, groups) if use_cache else None
        cached = None
        if key is not None:
            with stage("cache_lookup"):
                cached = self.cache.get(key)
        if cached is not None:
            response = QueryResponse.model_validate_json(cached)
            return key, response.model_copy(update={"cached": True}), []
        hits = self.retriever.search(
            request.question, request.top_k, request.filters, groups=groups
        )
        floor = self.retriever.settings.min_relevance
        relevant = any((hit.vector_score or 0.0) >= floor for hit in hits)
        return key, None, hits if relevant else []

    def _no_answer(self) -> Generation:
        return Generation(answer=NO_ANSWER, citations=[], generator=self.answerer.name)

    def _finish(self, key: str | None, generation: Generation, context: list[Hit]) -> QueryResponse:
        """The response, cached (under `key`, unless None) and filed under the chunks its
        answer was built from."""
        response = QueryResponse(
            answer=generation.answer,
            citations=generation.citations,
            generator=generation.generator,
            usage=generation.usage,
            cached=False,
        )
        if key is not None:
            self.cache.set(key, response.model_dump_json(), [hit.chunk_id for hit in context])
        return response

    def _key(self, request: QueryRequest, groups: Groups) -> str:
        settings = self.retriever.settings
        return cache_key(
            "query",
            question=question_cache_form(request.question),
            top_k=request.top_k,
            filters=request.filters.model_dump(mode="json") if request.filters else None,
            mode=settings.retrieval_mode,
            reranker=self.retriever.reranker.name,
            generator=self.answerer.name,
            index=settings.index_uri,
            # A new index version misses the cache; read at most a TTL ago, so a hit stays cheap.
            index_version=self.retriever.index.recent_version(settings.index_version_ttl_seconds),
            groups=None if groups is None else sorted(groups),
        )
