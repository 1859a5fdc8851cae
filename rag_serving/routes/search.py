from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from rag_core.schemas import SearchRequest, SearchResponse
from rag_serving.deps import RetrieverDep

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse)
async def search(request: SearchRequest, retriever: RetrieverDep) -> SearchResponse:
    """The chunks most relevant to the query, best first."""
    hits = await run_in_threadpool(
        retriever.search, request.query, request.top_k, request.filters, request.mode
    )
    return SearchResponse(hits=hits)
