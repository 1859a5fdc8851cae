from fastapi import APIRouter
from pydantic import BaseModel

from rag_serving.deps import RetrieverDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    chunks: int
    index_version: int


@router.get("/healthz", response_model=Health)
def healthz(retriever: RetrieverDep) -> Health:
    stats = retriever.index.stats()
    return Health(status="ok", chunks=stats.chunks, index_version=stats.table_version)
