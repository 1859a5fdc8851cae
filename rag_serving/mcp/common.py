"""What both MCP servers share: who the caller is, scope checks, running `rag_core` off the
event loop with its errors turned into tool errors, and the span and metrics of every tool
call."""

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from mcp_types.methods import is_input_required
from opentelemetry.trace import StatusCode
from pydantic import BaseModel, ValidationError

from rag_core.adapters.dependencies import DependencyUnavailable
from rag_core.telemetry import tracer
from rag_serving.auth import Principal
from rag_serving.observability import MCP_TOOL_CALLS, MCP_TOOL_SECONDS

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class McpCaller(AuthenticatedUser):
    """An HTTP caller the API authenticated, as the MCP transport keeps it on the request
    (`scope["user"]`): the SDK binds each session to it, and tools read the principal."""

    def __init__(self, principal: Principal):
        super().__init__(
            AccessToken(
                token="",  # the bearer token is not kept past its verification
                client_id=principal.subject,
                scopes=sorted(principal.scopes),
                subject=principal.subject,
            )
        )
        self.principal = principal


def caller(ctx: Context, local: Principal | None) -> Principal:
    """The principal calling: the one the API authenticated over HTTP, else (stdio, where
    no request carries one) the server's `local` identity. A server built for HTTP has no
    local identity, so a request that somehow got past authentication is refused."""
    request = ctx.request_context.request
    user = getattr(request, "scope", {}).get("user") if request is not None else None
    if isinstance(user, McpCaller):
        return user.principal
    if request is None and local is not None:
        return local
    raise ToolError("not authenticated")


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise ToolError(f"missing scope {scope}")


def parsed(model: type[M], **fields: Any) -> M:
    """`fields` as `model`, the REST API's request shape, or a tool error naming each
    problem (field and reason, never the value)."""
    try:
        return model.model_validate(fields)
    except ValidationError as invalid:
        raise ToolError(invalid_input(invalid)) from None


def invalid_input(invalid: ValidationError) -> str:
    problems = [
        f"{'.'.join(map(str, error['loc'])) or 'input'}: {error['msg']}"
        for error in invalid.errors()
    ]
    return "invalid input: " + "; ".join(problems)


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a worker thread (storage and models block), its anticipated
    failures as tool errors; anything else is logged and shown as the SDK's generic
    error, without its text."""
    try:
        return await anyio.to_thread.run_sync(partial(function, *args))
    except ValidationError as invalid:
        raise ToolError(invalid_input(invalid)) from None
    except DependencyUnavailable as unavailable:
        raise ToolError(f"{unavailable}; try again later") from None


class ObservedTools:
    """Server middleware: every `tools/call` is a span (`mcp.tool <name>`, a child of the
    SDK's own) and is counted in `rag_mcp_tool_calls_total{server,tool,outcome}` and timed
    in `rag_mcp_tool_call_duration_seconds`. Outcomes: `ok`, `error` (a tool error),
    `input_required` (asked the client for consent), `rejected` (a protocol error: unknown
    tool, malformed call). A name that is no tool of the server is labelled `unknown`, so
    callers cannot mint label values."""

    def __init__(self, server: str, tool_names: set[str]):
        self.server = server
        self.tool_names = frozenset(tool_names)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        name = (ctx.params or {}).get("name")
        tool = name if isinstance(name, str) and name in self.tool_names else "unknown"
        started = time.perf_counter()
        outcome = "rejected"
        with tracer.start_as_current_span(
            f"mcp.tool {tool}", attributes={"rag.mcp.server": self.server, "rag.mcp.tool": tool}
        ) as span:
            try:
                result = await call_next(ctx)
                outcome = _outcome(result)
                return result
            finally:
                span.set_attribute("rag.mcp.outcome", outcome)
                if outcome in ("error", "rejected"):
                    span.set_status(StatusCode.ERROR)
                MCP_TOOL_CALLS.labels(self.server, tool, outcome).inc()
                MCP_TOOL_SECONDS.labels(self.server, tool).observe(time.perf_counter() - started)


def _outcome(result: HandlerResult) -> str:
    """The outcome of a result, typed or (as the SDK hands it to middleware) wire-shaped."""
    if is_input_required(result):
        return "input_required"
    if isinstance(result, CallToolResult):
        return "error" if result.is_error else "ok"
    return "error" if isinstance(result, dict) and result.get("isError") else "ok"
