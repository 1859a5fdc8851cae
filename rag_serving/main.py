"""The API app. Run with `ragctl serve`, or `uvicorn --factory rag_serving.main:create_app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

import rag_core
from rag_core import services
from rag_core.settings import Settings, get_settings
from rag_serving.admission import limit_admission
from rag_serving.auth import build_authenticator
from rag_serving.hardening import protect
from rag_serving.mcp import http as mcp_http
from rag_serving.observability import configure_tracing, instrument
from rag_serving.ratelimit import build_rate_limiter
from rag_serving.readiness import ReadinessProbe, serving_dependencies
from rag_serving.routes import (
    admin,
    audit,
    documents,
    erasure,
    health,
    ingest,
    metrics,
    query,
    search,
    status,
)

DOCS_ASSETS_URL = "/docs/assets"


def serve_docs_offline(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` with their JavaScript, CSS and icon served by the API
    itself from the `fastapi_offline` package, not from a CDN: FastAPI's own pages load them
    from the internet and are blank on an offline machine. Open without a token, as FastAPI's
    are (the routes that do something check their scopes themselves)."""
    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_tracing()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.query_service = services.query_service(settings)
        index = app.state.query_service.retriever.index
        app.state.readiness = ReadinessProbe(serving_dependencies(settings, index.table_version))
        async with mcp_http.serving(app):
            yield
        app.state.readiness.close()

    app = FastAPI(
        title="RAG platform",
        summary="Search and cited answers over a governed knowledge index.",
        version=rag_core.__version__,
        lifespan=lifespan,
        docs_url=None,  # served by serve_docs_offline, with local assets
        redoc_url=None,
    )
    serve_docs_offline(app)
    app.state.authenticator = build_authenticator(settings)
    app.state.rate_limiter = build_rate_limiter(settings)
    instrument(app)
    protect(app, settings)
    limit_admission(app, settings)  # last, so outermost: a refusal costs next to nothing
    # 413 past the limit, declared or not: a chunked body is counted as it streams in. Set
    # per router, not on the app, so the 413 passes through `protect`'s middleware (JSON).
    for module in (health, search, query, documents, erasure, audit, admin, metrics, status):
        app.include_router(module.router, max_body_size=settings.max_request_bytes)
    app.include_router(ingest.router, max_body_size=settings.max_upload_bytes)  # documents
    mcp_http.mount(app, settings)  # /mcp/docstore, /mcp/governance
    return app
