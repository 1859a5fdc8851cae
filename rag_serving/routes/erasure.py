"""Right to be forgotten: erasure requests are carried out in the background by the
orchestrator (in process, or a run submitted to Dagster); their status says what was erased
where and whether verification passed, or why the request failed."""

import logging

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, status

from rag_core import services
from rag_core.adapters.audit import AuditRecord
from rag_core.flows import erasure
from rag_core.flows.erasure import ErasureScope, ErasureStatus, NewErasureRequest
from rag_core.flows.orchestration import Orchestrator
from rag_core.settings import Settings
from rag_serving.auth import GOVERNANCE, PrincipalDep, require_scope
from rag_serving.deps import OrchestratorDep, SettingsDep

router = APIRouter(
    prefix="/v1", tags=["erasure"], dependencies=[Depends(require_scope(GOVERNANCE))]
)
log = logging.getLogger(__name__)


def carry_out(orchestrator: Orchestrator, request_id: str) -> None:
    """Carry the request out as `ragctl forget` does, without waiting for a submitted run. A
    failure is logged and recorded on the request (status `failed` with its reason,
    resumable); there is no caller left to raise it to."""
    try:
        orchestrator.erase(request_id, wait=False)
    except Exception:
        log.exception("erasure request %s failed", request_id)


def _accept(
    settings: Settings,
    orchestrator: Orchestrator,
    scope: ErasureScope,
    requester: str,
    untag: bool,
    tasks: BackgroundTasks,
) -> ErasureStatus:
    request = erasure.submit(
        services.object_store(settings), scope, requester, untag_versions=untag
    )
    tasks.add_task(carry_out, orchestrator, request.request_id)
    return request.view()


@router.post(
    "/erasure-requests", response_model=ErasureStatus, status_code=status.HTTP_202_ACCEPTED
)
def create_erasure_request(
    body: NewErasureRequest,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    caller: PrincipalDep,
    tasks: BackgroundTasks,
) -> ErasureStatus:
    """Erase documents by id, by source URI prefix, or every document and warehouse row about
    a data subject. Returns at once; poll the request for its outcome."""
    scope = ErasureScope.model_validate(body.model_dump(exclude={"untag_versions"}))
    return _accept(settings, orchestrator, scope, caller.subject, body.untag_versions, tasks)


@router.delete(
    "/documents/{doc_id}", response_model=ErasureStatus, status_code=status.HTTP_202_ACCEPTED
)
def delete_document(
    doc_id: str,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    caller: PrincipalDep,
    tasks: BackgroundTasks,
) -> ErasureStatus:
    """Erase one document (every version, everywhere); an erasure request like any other."""
    scope = ErasureScope(doc_ids=[doc_id])
    return _accept(settings, orchestrator, scope, caller.subject, False, tasks)


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
