from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from rag_core.domain.schemas import SearchRequest, SearchResponse
from rag_serving.auth import QUERY, PrincipalDep, require_scope
from rag_serving.deps import RetrieverDep

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[Depends(require_scope(QUERY))])


@router.post("/search", response_model=SearchResponse)
async def search(
    request: SearchRequest, retriever: RetrieverDep, principal: PrincipalDep
) -> SearchResponse:
    """The chunks most relevant to the query that the caller may read, best first."""
    hits = await run_in_threadpool(
        retriever.search, request.query, request.top_k, request.filters, request.mode,
        principal.groups,
    )  # fmt: skip
    return SearchResponse(hits=hits)
