from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from rag_core.schemas import QueryRequest, QueryResponse
from rag_serving.deps import QueryServiceDep

router = APIRouter(prefix="/v1", tags=["query"])


@router.post("/query", response_model=QueryResponse)
async def query(request: QueryRequest, service: QueryServiceDep) -> QueryResponse:
    """An answer from the index with its citations, the generator that wrote it, token usage
    and cost, and whether it came from the cache."""
    return await run_in_threadpool(service.query, request)
