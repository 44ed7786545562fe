"""Small Starlette helpers shared by the route modules: the state, bounded bodies, error answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
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


CLOSE = {"Connection": "close"}  # the rest of an unread body is never read: end the connection after the answer


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (announced or actually sent) and
    with 408 when it has not all arrived within the server's ``body_timeout_s``. A client gone
    mid-body is answered 499 (nginx's "client closed request"): nobody reads it, but the access log
    and the metrics count it as the client's doing, not as a server error."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is {shown_int(declared)} bytes; the limit is {limit}.",
                       code="request_too_large", headers=CLOSE)
    timeout = serve_state(request).config.connections.body_timeout_s
    try:
        return await asyncio.wait_for(_read(request, limit), timeout)
    except asyncio.TimeoutError:
        raise APIError(408, f"The request body did not arrive within {timeout:g} s.", code="timeout",
                       headers=CLOSE) from None
    except ClientDisconnect:
        raise APIError(499, "The client closed the connection before sending the whole body.",
                       type="client_closed", code="client_closed") from None


async def _read(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"The request body is over the limit of {limit} bytes.",
                           code="request_too_large", headers=CLOSE)
        chunks.append(chunk)
    return b"".join(chunks)


def shown_int(digits: str) -> str:
    """A declared length as a message may quote it (a 5,000-digit one is not echoed)."""
    return digits if len(digits) <= 20 else f"a {len(digits)}-digit number of"


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected still answers in OpenAI's shape (the traceback goes to the log)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc,
              extra={"fields": {"path": request.url.path}})
    return error_response(request, APIError(500, "The server failed to handle this request.",
                                            type="server_error", code="internal_error"))
