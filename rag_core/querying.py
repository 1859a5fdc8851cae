"""The query path: cache lookup → retrieve → rerank → generate, each a traced stage."""

from rag_core.answering import NO_ANSWER, Answerer, Generation
from rag_core.cache import ResponseCache, cache_key, normalize_question
from rag_core.retrieval import Retriever
from rag_core.schemas import QueryRequest, QueryResponse
from rag_core.telemetry import stage


class QueryService:
    def __init__(self, retriever: Retriever, answerer: Answerer, cache: ResponseCache):
        self.retriever = retriever
        self.answerer = answerer
        self.cache = cache

    def _key(self, request: QueryRequest) -> str:
        settings = self.retriever.settings
        return cache_key(
            "query",
            question=normalize_question(request.question),
            top_k=request.top_k,
            filters=request.filters.model_dump(mode="json") if request.filters else None,
            mode=settings.retrieval_mode,
            reranker=self.retriever.reranker.name,
            generator=self.answerer.name,
            index=settings.index_uri,
            index_version=self.retriever.index.table_version(),
        )

    def query(self, request: QueryRequest) -> QueryResponse:
        key = self._key(request)
        with stage("cache_lookup"):
            cached = self.cache.get(key)
        if cached is not None:
            return QueryResponse.model_validate_json(cached).model_copy(update={"cached": True})
        hits = self.retriever.search(request.question, request.top_k, request.filters)
        floor = self.retriever.settings.min_relevance
        if not any((hit.vector_score or 0.0) >= floor for hit in hits):
            generation = Generation(answer=NO_ANSWER, citations=[], generator=self.answerer.name)
        else:
            with stage("generate"):
                generation = self.answerer.generate(request.question, hits)
        response = QueryResponse(
            answer=generation.answer,
            citations=generation.citations,
            generator=generation.generator,
            usage=generation.usage,
            cached=False,
        )
        self.cache.set(key, response.model_dump_json())
        return response
