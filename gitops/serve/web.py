"""Small Starlette helpers shared by the route modules: the state, bounded bodies, error answers."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from gitops.serve.protocol import APIError

log = logging.getLogger("gitops.serve")


def serve_state(request: Request) -> Any:
    """The app's ``ServeState`` (typed loosely: app.py builds it and imports this module)."""
    return request.app.state.serve


def error_response(request: Request, exc: APIError) -> JSONResponse:
    request.state.error_type = exc.type
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def api_error(request: Request, exc: APIError) -> JSONResponse:
    return error_response(request, exc)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own 404/405 in OpenAI's error shape, so every client parses every error."""
    return error_response(request, APIError(exc.status_code, f"{request.method} {request.url.path}: "
                                            f"{exc.detail}", code=str(exc.status_code)))


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (announced or actually sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is {declared} bytes; the limit is {limit}.",
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"The request body is over the limit of {limit} bytes.",
                           code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected still answers in OpenAI's shape (the traceback goes to the log)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc,
              extra={"fields": {"path": request.url.path}})
    return error_response(request, APIError(500, "The server failed to handle this request.",
                                            type="server_error", code="internal_error"))
