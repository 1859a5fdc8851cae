"""The query path: cache lookup (exact, then semantic when it is on) → retrieve → rerank →
generate, each a traced stage, as one response or as a stream of text deltas closed by the
full response. Queries are counted by whether the cache answered, answers by their generator,
and a streamed answer's first text is timed."""

import time
import unicodedata
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span

from rag_core.adapters.answering import EXTRACTIVE
from rag_core.adapters.cache import ResponseCache, cache_key, normalize_question
from rag_core.adapters.semantic_cache import SemanticCache
from rag_core.domain.answers import NO_ANSWER, Answerer, Generation
from rag_core.domain.schemas import CacheHit, Hit, QueryRequest, QueryResponse
from rag_core.flows.retrieval import Groups, Retriever
from rag_core.telemetry import (
    ANSWERS,
    INPUT_VALUE,
    OUTPUT_VALUE,
    QUERIES,
    SPAN_KIND,
    TIME_TO_FIRST_TOKEN,
    generation_attributes,
    stage,
    tracer,
)

# Marks that end a question without changing what it asks ("What is VACUUM?" and
# "what is  vacuum" are one question).
_CLOSING_MARKS = " .?!"


def question_cache_form(question: str) -> str:
    """The question as the response cache keys it: Unicode-compatible forms unified (a
    full-width question mark is a "?"), case and runs of spacing ignored, closing marks dropped."""
    unified = unicodedata.normalize("NFKC", question)
    return normalize_question(unified.casefold()).rstrip(_CLOSING_MARKS)


@dataclass(frozen=True)
class _CacheSlot:
    """Where a question's answer is looked up and stored: its exact key, and its semantic
    cache bucket (None with the semantic cache off)."""

    key: str
    bucket: str | None


class QueryService:
    def __init__(
        self,
        retriever: Retriever,
        answerer: Answerer,
        cache: ResponseCache,
        semantic: SemanticCache | None = None,
    ):
        """`semantic`: also answer from the cache a question close to a cached one (it keeps
        its buckets in `cache`'s store)."""
        self.retriever = retriever
        self.answerer = answerer
        self.cache = cache
        self.semantic = semantic

    def query(
        self, request: QueryRequest, groups: Groups = None, *, use_cache: bool = True
    ) -> QueryResponse:
        """`groups`: the caller's, which limit what is retrieved and key the cache, so one
        group's answer is never served to another. Without `use_cache` the cache is neither
        read nor filled: the answer is generated afresh (as an evaluation measures it). A
        request naming no `top_k` gets the cost profile's."""
        request = self._with_profile_top_k(request)
        with self._traced(request.question) as span:
            response = self._query(request, groups, use_cache)
            self._trace_response(span, response)
            return response

    def _query(self, request: QueryRequest, groups: Groups, use_cache: bool) -> QueryResponse:
        slot, cached, hits = self._prepare(request, groups, use_cache)
        if cached is not None:
            return cached
        if not hits:
            return self._finish(request, slot, self._no_answer(), hits)
        with stage("generate") as span:
            generation = self.answerer.generate(request.question, hits)
            self._trace_generation(span, request.question, generation)
            return self._finish(request, slot, generation, hits)

    def stream(
        self, request: QueryRequest, groups: Groups = None, *, use_cache: bool = True
    ) -> Iterator[str | QueryResponse]:
        """Text deltas as the answer is written, then the complete response (`groups` and
        `use_cache` as for `query`)."""
        request = self._with_profile_top_k(request)
        with self._traced(request.question) as span:
            response = yield from self._stream(request, groups, use_cache)
            self._trace_response(span, response)
            yield response

    def _stream(
        self, request: QueryRequest, groups: Groups, use_cache: bool
    ) -> Generator[str, None, QueryResponse]:
        """The text deltas; returns the complete response."""
        slot, cached, hits = self._prepare(request, groups, use_cache)
        if cached is not None:
            yield cached.answer
            return cached
        generation = self._no_answer()
        if hits:
            with stage("generate") as span:
                generation = yield from self._timed_stream(request.question, hits)
                self._trace_generation(span, request.question, generation)
        else:
            yield generation.answer
        return self._finish(request, slot, generation, hits)

    def _with_profile_top_k(self, request: QueryRequest) -> QueryRequest:
        return request.with_default_top_k(self.retriever.settings.query_top_k)

    @contextmanager
    def _traced(self, question: str) -> Iterator[Span]:
        """The query's span, parent of its stages' (the question on it only with
        `trace_content`)."""
        with tracer.start_as_current_span("query") as span:
            span.set_attribute(SPAN_KIND, "CHAIN")
            if self.retriever.settings.trace_content:
                span.set_attribute(INPUT_VALUE, question)
            yield span

    def _trace_response(self, span: Span, response: QueryResponse) -> None:
        span.set_attributes({"rag.cached": response.cached, "rag.generator": response.generator})
        if response.cache_hit is not None:
            span.set_attribute("rag.cache_hit", response.cache_hit)
        if self.retriever.settings.trace_content:
            span.set_attribute(OUTPUT_VALUE, response.answer)

    def _trace_generation(self, span: Span, question: str, generation: Generation) -> None:
        """The generate stage as an LLM span: the model configured and the one that answered
        (`extractive` when the model could not be reached), and the tokens it took."""
        span.set_attributes(
            generation_attributes(
                requested_model=self.answerer.name,
                model=generation.generator,
                prompt_tokens=generation.usage.prompt_tokens,
                completion_tokens=generation.usage.completion_tokens,
                # The model speaks OpenAI's protocol: named as OpenAI's own instrumentation
                # names it, whichever server answers.
                provider=None if generation.generator == EXTRACTIVE else "openai",
            )
        )
        if self.retriever.settings.trace_content:
            span.set_attributes({INPUT_VALUE: question, OUTPUT_VALUE: generation.answer})

    def _timed_stream(self, question: str, hits: list[Hit]) -> Generator[str, None, Generation]:
        """The answerer's deltas; returns its generation. The wait for the first delta is
        observed under the generator that wrote the answer, known only at its end (a model
        that turned out unreachable hands over to the extractive answerer)."""
        started = time.perf_counter()
        first_text_after = None
        generation = self._no_answer()
        for item in self.answerer.stream(question, hits):
            if isinstance(item, Generation):
                generation = item
                continue
            if first_text_after is None:
                first_text_after = time.perf_counter() - started
            yield item
        if first_text_after is not None:
            TIME_TO_FIRST_TOKEN.labels(generation.generator).observe(first_text_after)
        return generation

    def _prepare(
        self, request: QueryRequest, groups: Groups, use_cache: bool
    ) -> tuple[_CacheSlot | None, QueryResponse | None, list[Hit]]:
        """The cache slot (None when the cache is bypassed), a cached response if any, else
        the hits relevant enough to use."""
        slot = self._slot(request, groups) if use_cache else None
        cached = None if slot is None else self._cached(request, slot)
        QUERIES.labels("true" if cached is not None else "false").inc()
        if cached is not None:
            return slot, cached, []
        hits = self.retriever.search(
            request.question, request.top_k, request.filters, groups=groups
        )
        floor = self.retriever.settings.min_relevance
        relevant = any((hit.vector_score or 0.0) >= floor for hit in hits)
        return slot, None, hits if relevant else []

    def _cached(self, request: QueryRequest, slot: _CacheSlot) -> QueryResponse | None:
        """The answer cached for this question, else (semantic cache on) for the closest
        question asked under the same conditions. The question is embedded only on an exact
        miss, and as retrieval embeds it (the embedding is cached in process): once."""
        with stage("cache_lookup"):
            stored = self.cache.get(slot.key)
        if stored is not None:
            return _served(stored, "exact")
        if self.semantic is None or slot.bucket is None:
            return None
        with stage("semantic_cache_lookup"):
            vector = self.retriever.embedder.embed_query(request.question)
            stored = self.semantic.find(slot.bucket, vector)
        return None if stored is None else _served(stored, "semantic")

    def _no_answer(self) -> Generation:
        return Generation(answer=NO_ANSWER, citations=[], generator=self.answerer.name)

    def _finish(
        self,
        request: QueryRequest,
        slot: _CacheSlot | None,
        generation: Generation,
        context: list[Hit],
    ) -> QueryResponse:
        """The response, cached (in `slot`, unless None) and filed under the chunks its
        answer was built from; with the semantic cache on, the question joins its bucket."""
        ANSWERS.labels(generation.generator).inc()
        response = QueryResponse(
            answer=generation.answer,
            citations=generation.citations,
            generator=generation.generator,
            usage=generation.usage,
            cached=False,
        )
        if slot is None:
            return response
        self.cache.set(slot.key, response.model_dump_json(), [hit.chunk_id for hit in context])
        if self.semantic is not None and slot.bucket is not None:
            vector = self.retriever.embedder.embed_query(request.question)
            self.semantic.remember(slot.bucket, vector, slot.key, context)
        return response

    def _slot(self, request: QueryRequest, groups: Groups) -> _CacheSlot:
        conditions = self._conditions(request, groups)
        key = cache_key("query", question=question_cache_form(request.question), **conditions)
        bucket = None if self.semantic is None else self.semantic.bucket(conditions)
        return _CacheSlot(key, bucket)

    def _conditions(self, request: QueryRequest, groups: Groups) -> dict[str, Any]:
        """Everything a cached answer depends on but the question."""
        settings = self.retriever.settings
        return dict(
            top_k=request.top_k,
            filters=request.filters.model_dump(mode="json") if request.filters else None,
            mode=settings.retrieval_mode,
            reranker=self.retriever.reranker.name,
            generator=self.answerer.name,
            # How much of the passages the model reads, and how long it may write.
            context_budget=settings.context_budget_tokens,
            max_tokens=settings.llm_max_tokens,
            index=settings.index_uri,
            # A new index version misses the cache; read at most a TTL ago, so a hit stays cheap.
            index_version=self.retriever.index.recent_version(settings.index_version_ttl_seconds),
            groups=None if groups is None else sorted(groups),
        )


def _served(stored: str, hit: CacheHit) -> QueryResponse:
    return QueryResponse.model_validate_json(stored).model_copy(
        update={"cached": True, "cache_hit": hit}
    )
