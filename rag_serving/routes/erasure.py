"""Right to be forgotten: erasure requests run in the background; their status says what was
erased where and whether verification passed."""

import logging

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, status

from rag_core.flows import erasure
from rag_core import services
from rag_core.adapters.audit import AuditRecord
from rag_core.flows.erasure import ErasureScope, ErasureStatus, NewErasureRequest
from rag_core.settings import Settings
from rag_serving.auth import GOVERNANCE, PrincipalDep, require_scope
from rag_serving.deps import SettingsDep

router = APIRouter(
    prefix="/v1", tags=["erasure"], dependencies=[Depends(require_scope(GOVERNANCE))]
)
log = logging.getLogger(__name__)


def carry_out(settings: Settings, request_id: str) -> None:
    """Run the request as `ragctl forget` and the `rtbf` job do; a failure stays recorded on
    the request (status `failed`, resumable), so it is not raised again here."""
    from rag_assets.erasure import execute
    from rag_assets.ingest import local_instance

    try:
        execute(settings, local_instance(settings), request_id)
    except Exception:
        return


def _accept(
    settings: Settings, scope: ErasureScope, requester: str, untag: bool, tasks: BackgroundTasks
) -> ErasureStatus:
    request = erasure.submit(
        services.object_store(settings), scope, requester, untag_versions=untag
    )
    tasks.add_task(carry_out, settings, request.request_id)
    return request.view()


@router.post(
    "/erasure-requests", response_model=ErasureStatus, status_code=status.HTTP_202_ACCEPTED
)
def create_erasure_request(
    body: NewErasureRequest, settings: SettingsDep, caller: PrincipalDep, tasks: BackgroundTasks
) -> ErasureStatus:
    """Erase documents by id, by source URI prefix, or every document and warehouse row about
    a data subject. Returns at once; poll the request for its outcome."""
    scope = ErasureScope.model_validate(body.model_dump(exclude={"untag_versions"}))
    return _accept(settings, scope, caller.subject, body.untag_versions, tasks)


@router.delete(
    "/documents/{doc_id}", response_model=ErasureStatus, status_code=status.HTTP_202_ACCEPTED
)
def delete_document(
    doc_id: str, settings: SettingsDep, caller: PrincipalDep, tasks: BackgroundTasks
) -> ErasureStatus:
    """Erase one document (every version, everywhere); an erasure request like any other."""
    return _accept(settings, ErasureScope(doc_ids=[doc_id]), caller.subject, False, tasks)


@router.get("/erasure-requests/{request_id}", response_model=ErasureStatus)
def get_erasure_request(request_id: str, settings: SettingsDep) -> ErasureStatus:
    request = erasure.load(services.object_store(settings), request_id)
    if request is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no erasure request {request_id}")
    return request.view()


@router.post("/erasure-requests/{request_id}/readmission", response_model=AuditRecord)
def readmit(request_id: str, settings: SettingsDep, caller: PrincipalDep) -> AuditRecord:
    """Lift the tombstones a completed request left, so its content may be indexed again
    (a re-upload or the next sync); returns the audit record of the readmission."""
    try:
        return erasure.readmit(services.object_store(settings), request_id, caller.subject)
    except KeyError as unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(unknown.args[0])) from unknown
