"""The erasure audit trail, with its verification."""

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from rag_core import audit, services
from rag_core.audit import AuditRecord
from rag_serving.auth import GOVERNANCE, require_scope
from rag_serving.deps import SettingsDep

router = APIRouter(prefix="/v1", tags=["audit"], dependencies=[Depends(require_scope(GOVERNANCE))])


class AuditTrail(BaseModel):
    records: list[AuditRecord]
    head_sequence: int
    head_hash: str
    intact: bool
    problems: list[str]


@router.get("/audit", response_model=AuditTrail)
def get_audit_trail(settings: SettingsDep) -> AuditTrail:
    """Every record, oldest first; `intact` is false when a record was altered, removed or
    reordered (`problems` says which). Compare `head_*` with a copy kept elsewhere to detect
    truncation."""
    store = services.object_store(settings)
    problems = audit.verify_trail(store)
    sequence, digest = audit.head(store)
    return AuditTrail(
        records=audit.read_trail(store) if not problems else [],
        head_sequence=sequence,
        head_hash=digest,
        intact=not problems,
        problems=problems,
    )
