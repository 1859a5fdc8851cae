"""Dependencies of the routes, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from rag_core import services
from rag_core.adapters.objectstore import ObjectStore
from rag_core.flows.orchestration import Orchestrator, orchestrator_for
from rag_core.flows.querying import QueryService
from rag_core.flows.retrieval import Retriever
from rag_core.settings import Settings


def get_query_service(request: Request) -> QueryService:
    service: QueryService = request.app.state.query_service
    return service


def get_retriever(request: Request) -> Retriever:
    return get_query_service(request).retriever


QueryServiceDep = Annotated[QueryService, Depends(get_query_service)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_object_store(settings: SettingsDep) -> ObjectStore:
    return services.object_store(settings)


ObjectStoreDep = Annotated[ObjectStore, Depends(get_object_store)]


def get_orchestrator(settings: SettingsDep) -> Orchestrator:
    """Where indexing and erasure runs go (`RAG_ORCHESTRATOR`): in this process, or submitted
    to a running Dagster."""
    return orchestrator_for(settings)


OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
