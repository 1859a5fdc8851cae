from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from rag_core import services
from rag_core.domain.schemas import IndexStatus
from rag_serving.auth import QUERY, require_scope
from rag_serving.deps import SettingsDep

router = APIRouter(prefix="/v1", tags=["status"], dependencies=[Depends(require_scope(QUERY))])


@router.get("/status", response_model=IndexStatus)
async def status(settings: SettingsDep) -> IndexStatus:
    """Documents, versions and chunks in the index, its version, and how many live versions
    could not be parsed: what `ragctl status` prints."""
    return await run_in_threadpool(services.index_status, settings)
