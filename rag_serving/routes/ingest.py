"""Uploads and reindexing. An upload is stored as a source under `documents/` with its acl
sidecar, where the object-store sensor finds it (within 15 s) like any dropped file; reindex
indexes a document's source as it is now, in the background, without waiting for that."""

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from rag_core.adapters.catalog import discover, known_versions, put_source, read_manifest
from rag_core.adapters.objectstore import ObjectStore
from rag_core.domain import layout
from rag_core.domain.documents import (
    DocumentVersion,
    InvalidSourceKey,
    SourceMetadata,
    check_source_key,
)
from rag_core.domain.ids import content_hash
from rag_core.flows.orchestration import Orchestrator
from rag_serving.auth import INGEST, require_scope
from rag_serving.deps import ObjectStoreDep, OrchestratorDep

router = APIRouter(prefix="/v1", tags=["ingest"], dependencies=[Depends(require_scope(INGEST))])
log = logging.getLogger(__name__)

RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class AcceptedDocument(BaseModel):
    source_key: str
    doc_id: str
    version: str


def source_key_for(key: str) -> str:
    """`documents/<key>`, or 422 saying why the key cannot name a source. A key is relative
    to `documents/`, and may also be written with that prefix, as `source_key` shows it:
    `x.md` and `documents/x.md` name the same source."""
    relative = key.removeprefix(f"{layout.SOURCES_PREFIX}/")
    try:
        return check_source_key(layout.source_key(relative), allow_warehouse=False)
    except InvalidSourceKey as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"key: {exc}") from exc


def _store(
    store: ObjectStore, source_key: str, content: bytes, metadata: SourceMetadata | None
) -> DocumentVersion:
    if store.exists(layout.tombstone_key(content_hash(content))):
        raise HTTPException(status.HTTP_409_CONFLICT, "this content was erased on request")
    put_source(store, source_key, content, metadata)
    return discover(store, [source_key])[0]


def _accepted(version: DocumentVersion) -> AcceptedDocument:
    return AcceptedDocument(
        source_key=version.source_key, doc_id=version.doc_id, version=version.version
    )


@router.post(
    "/documents",
    response_model=AcceptedDocument,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=RAW_BODY,
)
async def upload_document(
    request: Request,
    store: ObjectStoreDep,
    key: Annotated[
        str,
        Query(
            min_length=1,
            max_length=512,
            description="Path under documents/, with or without that prefix.",
        ),
    ],
    acl: Annotated[list[str], Query(default_factory=list, description="Groups that may read it.")],
    subjects: Annotated[list[str], Query(default_factory=list, description="People it is about.")],
) -> AcceptedDocument:
    """Store the body as the source `documents/<key>` (replacing one there; a `key` that
    already starts with `documents/` is not prefixed again), readable by `acl`'s groups
    (everyone when none). It is indexed by the next sync, or at once through reindex with
    the returned `doc_id`."""
    source_key = source_key_for(key)
    content = await request.body()  # at most RAG_MAX_UPLOAD_BYTES (main.create_app)
    if not content:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the document is empty")
    metadata = SourceMetadata(acl=acl, subjects=subjects) if acl or subjects else None
    return _accepted(await run_in_threadpool(_store, store, source_key, content, metadata))


def index_source(orchestrator: Orchestrator, source_key: str) -> None:
    """Index the source's new version without waiting for a submitted run; a failure is
    logged, as there is no caller left to tell."""
    try:
        orchestrator.index_sources([source_key], wait=False)
    except Exception:
        log.exception("reindexing %s failed", source_key)


@router.post(
    "/documents/{doc_id}/reindex",
    response_model=AcceptedDocument,
    status_code=status.HTTP_202_ACCEPTED,
)
def reindex_document(
    doc_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="32 hex digits.")],
    store: ObjectStoreDep,
    orchestrator: OrchestratorDep,
    tasks: BackgroundTasks,
) -> AcceptedDocument:
    """Index the document's source as it is now (a new version, a changed acl), in the
    background; a version already indexed is left as it is."""
    versions = known_versions(store, doc_id)
    source_key = read_manifest(store, doc_id, versions[0]).source_key if versions else None
    current = discover(store, [source_key]) if source_key else []
    if not current:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id} with a source")
    tasks.add_task(index_source, orchestrator, current[0].source_key)
    return _accepted(current[0])
