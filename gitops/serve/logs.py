"""Structured logs: one JSON object per line, and the access log + request metrics middleware.

Loggers: ``gitops.serve`` (loads, swaps, failures) and ``gitops.serve.access`` (one line per
request). The library only emits records; whoever runs the server decides where they go
(:func:`json_handler` gives the usual stderr JSON lines).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from gitops.serve.metrics import ServeMetrics

access_log = logging.getLogger("gitops.serve.access")
VERSION_HEADER = "X-Gitops-Version"
ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics",
          "/hooks/deploy")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}``; fields come from ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3), "level": record.levelname.lower(),
            "logger": record.name, "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def json_handler(stream=None) -> logging.Handler:
    """A handler writing JSON lines to ``stream`` (default stderr), for a CLI or a benchmark."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


class AccessLog:
    """ASGI middleware: an access log line and the request metrics for every HTTP request.

    Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched; the
    duration runs to the last byte sent. Handlers leave token counts in ``scope["state"]``.
    """

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "version": ""}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == VERSION_HEADER.lower().encode():
                        seen["version"] = value.decode("latin-1").split(";")[0]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._record(scope, seen, time.perf_counter() - t0)

    def _record(self, scope, seen: dict[str, Any], seconds: float) -> None:
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        state = scope.get("state") or {}
        status, version = seen["status"], seen["version"]
        self.metrics.requests.labels(route, str(status), version).inc()
        self.metrics.latency.labels(route).observe(seconds)
        if status >= 400:
            self.metrics.errors.labels(route, state.get("error_type", "http_error")).inc()
        client = scope.get("client")
        fields = {"method": scope.get("method"), "path": path, "status": status,
                  "ms": round(seconds * 1000, 2), "version": version or None,
                  "client": f"{client[0]}:{client[1]}" if client else None}
        fields.update({k: state[k] for k in ("request_id", "prompt_tokens", "completion_tokens",
                                              "error_type") if k in state})
        access_log.info("%s %s %s", fields["method"], path, status, extra={"fields": fields})
