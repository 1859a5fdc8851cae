"""The erasure audit trail, with its verification."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from rag_core import services
from rag_core.adapters import audit
from rag_core.adapters.audit import AuditRecord
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
def get_audit_trail(
    settings: SettingsDep,
    expected_head: Annotated[
        str | None,
        Query(
            pattern=audit.HEAD_PATTERN,
            description="`SEQUENCE:HASH` published earlier: detects a truncated trail.",
        ),
    ] = None,
) -> AuditTrail:
    """Every record, oldest first; `intact` is false when a record was altered, removed or
    reordered (`problems` says which), or, given the `expected_head` published earlier, when
    the newest records were removed."""
    head = None if expected_head is None else audit.parse_head(expected_head)
    store = services.object_store(settings)
    problems = audit.verify_trail(store, expected_head=head)
    sequence, digest = audit.head(store)
    return AuditTrail(
        records=audit.read_trail(store) if not problems else [],
        head_sequence=sequence,
        head_hash=digest,
        intact=not problems,
        problems=problems,
    )
