"""The MCP servers over streamable HTTP inside the API: `/mcp/docstore` (`rag:query`) and
`/mcp/governance` (`rag:governance`).

Each endpoint is a route of the app, so the API's middleware applies to it as to REST
(admission control, security headers, CORS, request metrics and spans), and every request
passes REST's own checks before the MCP transport sees it: the bearer token (`get_principal`),
the server's scope and the caller's rate limit (`require_scope`). Refusals follow the MCP
authorization spec: a 401 or 403 whose `WWW-Authenticate` names the protected-resource
metadata (RFC 9728), served at `/.well-known/oauth-protected-resource/mcp/<server>` with the
OIDC issuer as authorization server. Bodies are limited to `RAG_MAX_REQUEST_BYTES`. In dev
mode every caller is the development identity, as on REST, and the transport accepts only
loopback hosts and origins (DNS rebinding).
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rag_core.settings import Settings
from rag_serving.auth import GOVERNANCE, QUERY, Principal, bearer, get_principal, require_scope
from rag_serving.mcp import docstore, governance
from rag_serving.mcp.common import McpCaller

PREFIX = "/mcp"
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
LOOPBACK = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)


class Authorized:
    """The MCP transport behind REST's authentication, scope check and rate limit: the
    caller reaches it as `scope["user"]` (an `McpCaller`), or is refused with the spec's
    challenge."""

    def __init__(self, app: ASGIApp, path: str, scope: str):
        self.app = app
        self.path = path
        self.scope = scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = await self._principal(request)
        except HTTPException as refused:
            headers = dict(refused.headers or {})  # a 429's Retry-After
            if refused.status_code in (401, 403):
                headers["WWW-Authenticate"] = self._challenge(request, refused)
            response = JSONResponse({"detail": refused.detail}, refused.status_code, headers)
            await response(scope, receive, send)
            return
        scope["user"] = McpCaller(principal)
        await self.app(scope, receive, send)

    async def _principal(self, request: Request) -> Principal:
        credentials = await bearer(request)
        principal = await run_in_threadpool(get_principal, request, credentials)
        return await run_in_threadpool(require_scope(self.scope), request, principal)

    def _challenge(self, request: Request, refused: HTTPException) -> str:
        """REST's challenge (`Bearer`, with the token's error if any), naming where the
        resource's metadata is; a 403 names the scope missing."""
        challenge = (refused.headers or {}).get("WWW-Authenticate", "Bearer")
        if refused.status_code == 403:
            challenge = f'Bearer error="insufficient_scope", scope="{self.scope}"'
        metadata = f"{_base_url(request)}{METADATA_PREFIX}{self.path}"
        separator = " " if challenge == "Bearer" else ", "
        return f'{challenge}{separator}resource_metadata="{metadata}"'


class _McpRoute(Route):
    """A plain route that, like FastAPI's own, records itself as `scope["route"]` when it
    matches: REST's rate limit and request metrics key on the route's path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _metadata_endpoint(path: str, scope: str, issuer: str) -> Route:
    async def metadata(request: Request) -> JSONResponse:
        """RFC 9728 protected-resource metadata of one MCP endpoint."""
        document = ProtectedResourceMetadata.model_validate(
            {
                "resource": f"{_base_url(request)}{path}",
                "authorization_servers": [issuer],
                "scopes_supported": [scope],
                "resource_name": f"RAG platform MCP {path.removeprefix(f'{PREFIX}/')}",
            }
        )
        return JSONResponse(document.model_dump(mode="json", exclude_none=True))

    return _McpRoute(f"{METADATA_PREFIX}{path}", metadata, methods=["GET"])


class _Transport:
    """One server's streamable HTTP transport. A session manager runs only once, so each run
    of the app's lifespan (`running`, entered by `serving`) starts a new one."""

    def __init__(
        self, server: MCPServer, path: str, settings: Settings, security: TransportSecuritySettings
    ):
        self.server = server
        self.path = path
        self.max_request_bytes = settings.max_request_bytes
        self.security = security

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        # Builds the server's session manager; the Starlette app around it is not used.
        self.server.streamable_http_app(
            streamable_http_path=self.path,
            max_request_body_size=self.max_request_bytes,
            transport_security=self.security,
        )
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.session_manager.handle_request(scope, receive, send)


def mount(app: FastAPI, settings: Settings) -> None:
    """Add both MCP endpoints (and their metadata, with OIDC) to the app; their sessions
    run while `serving(app)` is entered in the app's lifespan."""
    issuer = settings.oidc_issuer if settings.auth_mode == "oidc" else None
    security = (
        LOOPBACK
        if issuer is None
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    servers: dict[str, tuple[str, MCPServer]] = {
        f"{PREFIX}/{docstore.NAME}": (
            QUERY,
            docstore.build(settings, lambda: app.state.query_service, local=None),
        ),
        f"{PREFIX}/{governance.NAME}": (GOVERNANCE, governance.build(settings, local=None)),
    }
    transports = []
    for path, (scope, server) in servers.items():
        transport = _Transport(server, path, settings, security)
        app.router.routes.append(_McpRoute(path, Authorized(transport, path, scope)))
        if issuer is not None:
            app.router.routes.append(_metadata_endpoint(path, scope, issuer))
        transports.append(transport)
    app.state.mcp_transports = transports


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[None]:
    """The session managers of the servers `mount` added, for this run of the app."""
    async with AsyncExitStack() as stack:
        for transport in app.state.mcp_transports:
            await stack.enter_async_context(transport.running())
        yield
