import contextvars
import json
from collections.abc import Generator, Iterator

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from rag_core.domain.schemas import QueryRequest, QueryResponse
from rag_serving.auth import QUERY, PrincipalDep, require_scope
from rag_serving.deps import QueryServiceDep

router = APIRouter(prefix="/v1", tags=["query"], dependencies=[Depends(require_scope(QUERY))])


def in_one_context(
    items: Iterator[str | QueryResponse],
) -> Generator[str | QueryResponse, None, None]:
    """`items`, every step run in one copy of the request's context, closing too (when the
    client leaves mid-answer). Starlette runs each step of a sync stream in a worker thread
    under a fresh copy of the context, so a span opened in one step (the `generate` stage,
    around the model's tokens) would be closed in another context than it was attached in:
    OpenTelemetry's "Failed to detach context"."""
    context = contextvars.copy_context()
    try:
        while True:
            try:
                item = context.run(next, items)
            except StopIteration:
                return
            yield item
    finally:
        if isinstance(items, Generator):
            context.run(items.close)


def server_sent_events(items: Iterator[str | QueryResponse]) -> Iterator[str]:
    for item in items:
        if isinstance(item, QueryResponse):
            yield f"event: done\ndata: {item.model_dump_json()}\n\n"
        else:
            yield f"event: token\ndata: {json.dumps({'text': item})}\n\n"


@router.post("/query", response_model=QueryResponse)
async def query(
    request: QueryRequest, service: QueryServiceDep, principal: PrincipalDep
) -> QueryResponse | Response:
    """An answer from the index with its citations, the generator that wrote it, token usage
    and cost, and whether it came from the cache; streamed as SSE when `stream` is true."""
    if request.stream:
        return StreamingResponse(
            server_sent_events(in_one_context(service.stream(request, principal.groups))),
            media_type="text/event-stream",
        )
    return await run_in_threadpool(service.query, request, principal.groups)
