"""Looking documents up: the way from the opaque ids Dagster shows (`<doc_id>@<version>`) to
a document's source, title, versions, chunks and access, and from a name back to the id.
Read-only, with the scope searches need; a document the caller may not read, or one erased,
is 404 like one that never existed. (Uploads, reindexing and erasure of `/v1/documents`
live in `ingest.py` and `erasure.py`, with their own scopes.)"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool

from rag_core.domain.schemas import MAX_DOCUMENTS_PAGE, DocumentDetails, DocumentList
from rag_core.flows.documents import DocumentLookup
from rag_serving.auth import QUERY, PrincipalDep, require_scope
from rag_serving.deps import ObjectStoreDep, RetrieverDep

router = APIRouter(prefix="/v1", tags=["documents"], dependencies=[Depends(require_scope(QUERY))])


def get_document_lookup(store: ObjectStoreDep, retriever: RetrieverDep) -> DocumentLookup:
    """Over the chunk store the app already has open."""
    return DocumentLookup(store, retriever.index)


DocumentLookupDep = Annotated[DocumentLookup, Depends(get_document_lookup)]


@router.get("/documents", response_model=DocumentList)
async def list_documents(
    lookup: DocumentLookupDep,
    principal: PrincipalDep,
    name: Annotated[
        str | None,
        Query(min_length=1, max_length=512, description="Part of the source key or title."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DOCUMENTS_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    """The documents the caller may read, by source key; with `name`, those whose source
    key or title holds it (any case)."""
    if name is None:
        return await run_in_threadpool(lookup.list, principal.groups, limit, offset)
    return await run_in_threadpool(lookup.find, name, principal.groups, limit, offset)


@router.get(
    "/documents/{doc_id}",
    response_model=DocumentDetails,
    responses={status.HTTP_404_NOT_FOUND: {"description": "Unknown, erased, or not readable."}},
)
async def describe_document(
    doc_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="32 hex digits.")],
    lookup: DocumentLookupDep,
    principal: PrincipalDep,
) -> DocumentDetails:
    """A document's source, title, versions (with parse status and chunks) and access."""
    details = await run_in_threadpool(lookup.describe, doc_id, principal.groups)
    if details is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such document")
    return details
