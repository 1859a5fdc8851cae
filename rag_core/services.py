"""Storage and model handles built from settings, shared by Dagster, the API and the CLI."""

from collections.abc import Callable
from datetime import UTC, datetime

from rag_core.adapters.answering import ExtractiveAnswerer
from rag_core.adapters.cache import build_cache_store, build_response_cache
from rag_core.adapters.embedding import Embedder, get_embedder
from rag_core.adapters.index import ChunkIndex
from rag_core.adapters.llm.client import LLMAnswerer
from rag_core.adapters.objectstore import ObjectStore
from rag_core.adapters.reranking import build_reranker
from rag_core.adapters.semantic_cache import SemanticCache
from rag_core.domain.answers import Answerer
from rag_core.domain.chunk_store import ChunkStore
from rag_core.domain.schemas import IndexStatus
from rag_core.flows.pipeline import parse_failures
from rag_core.flows.querying import QueryService
from rag_core.flows.retrieval import Retriever
from rag_core.settings import Settings


def object_store(settings: Settings) -> ObjectStore:
    return ObjectStore(
        settings.object_store_uri,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )


# The chunk store implementations, by `RAG_INDEX_BACKEND`.
CHUNK_STORES: dict[str, Callable[[Settings], ChunkStore]] = {"lancedb": ChunkIndex}


def chunk_index(settings: Settings) -> ChunkStore:
    return CHUNK_STORES[settings.index_backend](settings)


def embedder(settings: Settings) -> Embedder:
    return get_embedder(
        settings.embedding_model, settings.embed_batch_size, settings.inference_threads
    )


def retriever(settings: Settings) -> Retriever:
    return Retriever(chunk_index(settings), embedder(settings), settings, build_reranker(settings))


def query_service(settings: Settings) -> QueryService:
    """The model answers when one is configured and the answerer (or the cost profile) allows
    it; otherwise, and whenever the model cannot be reached, the extractive answerer does."""
    search = retriever(settings)
    answerer: Answerer = ExtractiveAnswerer(search.embedder)
    if settings.answerer == "llm" and settings.llm_base_url:
        answerer = LLMAnswerer(settings, fallback=answerer, relevance=search.embedder.relevance)
    store = build_cache_store(settings)
    semantic = (
        SemanticCache(store, settings.semantic_cache_similarity, settings.cache_ttl_seconds)
        if settings.semantic_cache
        else None
    )
    return QueryService(search, answerer, build_response_cache(settings, store), semantic)


def index_status(settings: Settings) -> IndexStatus:
    stats = chunk_index(settings).stats()
    return IndexStatus(
        documents=stats.documents,
        versions=stats.versions,
        chunks=stats.chunks,
        index_version=stats.table_version,
        failed_documents=len(parse_failures(object_store(settings))),
        profile=settings.profile,
        checked_at=datetime.now(UTC),
    )
