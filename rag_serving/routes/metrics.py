from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag_serving.auth import ADMIN, require_scope
from rag_serving.deps import RetrieverDep, SettingsDep
from rag_serving.observability import INDEX_CHUNKS, INDEX_VERSION, PROFILE, store_registry

router = APIRouter(tags=["operations"], dependencies=[Depends(require_scope(ADMIN))])


@router.get("/metrics", response_class=Response)
def metrics(retriever: RetrieverDep, settings: SettingsDep) -> Response:
    """Prometheus exposition of the process's metrics (the index gauges read from the table's
    metadata, without a scan; `rag_profile_info`, the cost profile), and of what RAG_HOME's
    stores hold: the latest evaluation runs, the erasure requests and their audit trail."""
    PROFILE.info({"profile": settings.profile})
    INDEX_VERSION.set(retriever.index.table_version())
    INDEX_CHUNKS.set(retriever.index.row_count())
    exposition = generate_latest() + generate_latest(store_registry(settings))
    return Response(exposition, media_type=CONTENT_TYPE_LATEST)
