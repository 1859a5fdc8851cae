"""The API app. Run with `ragctl serve`, or `uvicorn --factory rag_serving.main:create_app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rag_core import services
from rag_core.settings import Settings, get_settings
from rag_serving.admission import limit_admission
from rag_serving.auth import build_authenticator
from rag_serving.hardening import protect
from rag_serving.observability import configure_tracing, instrument
from rag_serving.ratelimit import build_rate_limiter
from rag_serving.readiness import ReadinessProbe, serving_dependencies
from rag_serving.routes import admin, audit, erasure, health, ingest, metrics, query, search


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_tracing()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.query_service = services.query_service(settings)
        index = app.state.query_service.retriever.index
        app.state.readiness = ReadinessProbe(serving_dependencies(settings, index.table_version))
        yield
        app.state.readiness.close()

    app = FastAPI(
        title="RAG platform",
        summary="Search and cited answers over a governed knowledge index.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.authenticator = build_authenticator(settings)
    app.state.rate_limiter = build_rate_limiter(settings)
    instrument(app)
    protect(app, settings)
    limit_admission(app, settings)  # last, so outermost: a refusal costs next to nothing
    # 413 past the limit, declared or not: a chunked body is counted as it streams in. Set
    # per router, not on the app, so the 413 passes through `protect`'s middleware (JSON).
    for module in (health, search, query, erasure, audit, admin, metrics):
        app.include_router(module.router, max_body_size=settings.max_request_bytes)
    app.include_router(ingest.router, max_body_size=settings.max_upload_bytes)  # documents
    return app
