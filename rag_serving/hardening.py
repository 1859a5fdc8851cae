"""What every response gets regardless of route: a body-size limit, security headers, an
explicit CORS policy, and no stack trace for an unexpected error."""

import logging

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.middleware.base import RequestResponseEndpoint

from rag_core.settings import Settings

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Cache-Control": "no-store",
}


UPLOAD_PATH = "/v1/documents"


def body_limit(settings: Settings, request: Request) -> int:
    """A document upload may be far larger than any API call's JSON."""
    if request.method == "POST" and request.url.path == UPLOAD_PATH:
        return settings.max_upload_bytes
    return settings.max_request_bytes


def _too_large(limit: int) -> str:
    return f"request body over {limit} bytes"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once it passes `limit`: the middleware only sees the
    declared length, and a chunked body declares none."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large(limit))
    return bytes(body)


def protect(app: FastAPI, settings: Settings) -> None:
    @app.middleware("http")
    async def limits_and_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        declared = request.headers.get("content-length", "0")
        limit = body_limit(settings, request)
        if not declared.isdigit() or int(declared) > limit:
            response: Response = JSONResponse(
                {"detail": _too_large(limit)},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

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
