"""What every response gets regardless of route: security headers, an explicit CORS policy,
errors as JSON (a 413 stating the limit, a 422 echoing at most the start of a long input, a
503 with `Retry-After` while a dependency the work needs is unreachable), and no stack trace
for an unexpected error. (Body-size limits are FastAPI's own `max_body_size`, set per router
in `main.create_app`.)"""

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.middleware.base import RequestResponseEndpoint
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_core.adapters.dependencies import DependencyUnavailable
from rag_core.settings import Settings

log = logging.getLogger(__name__)

MAX_ECHOED_CHARS = 200

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cache-Control": "no-store",
}


class StatedBodyLimit:
    """Starlette answers a body over the limit with a plain-text 413 that does not say the
    limit; this sends JSON like every other error, stating it. It reads the limit from the
    scope, where the router's limiter keeps it while the request runs (so the limits must be
    set on the routers, inside this middleware, not on the app, outside it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_stating_limit(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                await self._send_json(message, scope.get(MAX_BODY_SIZE_SCOPE_KEY), send)
            elif not replaced:  # the original 413's body is dropped
                await send(message)

        await self.app(scope, receive, send_stating_limit)

    @staticmethod
    async def _send_json(start: Message, limit: int | None, send: Send) -> None:
        detail = f"request body exceeds {limit} bytes" if limit else "request body too large"
        body = json.dumps({"detail": detail}).encode()
        kept = [(name, value) for name, value in start["headers"]
                if name.lower() not in (b"content-type", b"content-length")]  # fmt: skip
        headers = [*kept, (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def clipped(value: Any) -> Any:
    """`value`, or when longer than MAX_ECHOED_CHARS as text (JSON for a list or object), the
    start of that text and an ellipsis: a 15 KB question's 422 must not send it all back."""
    encoded = jsonable_encoder(value)
    if encoded is None or isinstance(encoded, bool | int | float):
        return encoded
    text = encoded if isinstance(encoded, str) else json.dumps(encoded)
    return encoded if len(text) <= MAX_ECHOED_CHARS else f"{text[:MAX_ECHOED_CHARS]}…"


def protect(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(StatedBodyLimit)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {**item, "input": clipped(item["input"])} if "input" in item else item
            for item in error.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(DependencyUnavailable)
    async def unavailable(request: Request, error: DependencyUnavailable) -> JSONResponse:
        headers = {"Retry-After": str(math.ceil(error.retry_seconds))}
        return JSONResponse({"detail": f"{error}; try again later"}, 503, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
