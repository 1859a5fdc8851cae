from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from rag_core.schemas import QueryRequest, QueryResponse
from rag_serving.deps import AnswererDep

router = APIRouter(prefix="/v1", tags=["query"])


@router.post("/query", response_model=QueryResponse)
async def query(request: QueryRequest, answerer: AnswererDep) -> QueryResponse:
    """An answer from the index, every statement cited; `generator` says what wrote it."""
    return await run_in_threadpool(
        answerer.answer, request.question, request.top_k, request.filters
    )
