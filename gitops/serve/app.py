"""The ASGI application: OpenAI completions, health, readiness, metrics and the deploy hook.

:func:`create_app` wires a :class:`~gitops.serve.source.ModelSource` (what to load), the model
manager (live swaps), the batcher (the engine's queue) and the optional deploy hook into one
Starlette app. Everything starts in the lifespan (model loading runs in the background:
``/healthz`` answers at once, ``/readyz`` when a model serves) and shutdown drains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.serve import completions
from gitops.serve.engine import LoadedModel, Opener, open_model
from gitops.serve.hooks import DeliveryDesk, DeployHandler
from gitops.serve.logs import AccessLog
from gitops.serve.manager import LoadEvent, ModelManager, log_event
from gitops.serve.metrics import CONTENT_TYPE, ServeMetrics
from gitops.serve.protocol import APIError, ConnectionLimits, Limits, model_list
from gitops.serve.scheduler import Batcher
from gitops.serve.source import ModelSource, Target, model_name
from gitops.serve.web import api_error, http_error, internal_error, read_body, serve_state


@dataclass(frozen=True)
class ServeConfig:
    """How one server runs. ``ref`` is what it follows (``review-autocomplete@production``)."""

    ref: str
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256
    request_timeout_s: float = 60.0
    threads: int | None = None
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1
    max_hook_bytes: int = 64 * 1024


Background = Callable[[ModelManager], Callable[[], None]]
"""Started with the app (``start(manager) -> stop``): e.g. ``--follow``'s poller of the git remote."""


class ServeState:
    """The running parts of one app (``app.state.serve``)."""

    def __init__(self, config: ServeConfig, source: ModelSource, opener: Opener,
                 deploy: DeployHandler | None, metrics: ServeMetrics, background: list[Background],
                 first: Target | None = None) -> None:
        self.config, self.source, self.opener, self.first = config, source, opener, first
        self.deploy, self.metrics, self.background = deploy, metrics, background
        self.name = model_name(config.ref)
        self.started = time.time()
        self.draining = False
        self.manager: ModelManager | None = None
        self.batcher: Batcher | None = None
        self.desk: DeliveryDesk | None = None
        self._stoppers: list[Callable[[], None]] = []

    def start(self) -> None:
        self.batcher = Batcher(max_batch=self.config.max_batch, max_wait_s=self.config.max_wait_ms / 1000,
                               max_queue=self.config.max_queue, on_batch=self.metrics.batch_size.observe)
        self.manager = ModelManager(self.source, self.opener, on_event=self._on_event, on_swap=self._on_swap)
        if self.deploy is not None:
            self.desk = DeliveryDesk(self.deploy, self.manager, self.retry_after())
        self.manager.request(self.first or self.config.ref)  # exactly what start-up checked, when it did
        self._stoppers = [start(self.manager) for start in self.background]

    def stop(self) -> None:
        """Drain: queued and running requests finish, then the loader stops and the model closes."""
        self.draining = True
        for stop in self._stoppers:
            stop()
        if self.batcher is not None:
            self.batcher.close(self.config.drain_timeout_s)
        if self.manager is not None:
            self.manager.close(self.config.drain_timeout_s)

    def acquire(self, n: int) -> LoadedModel:
        model = self.manager.acquire(n) if self.manager and not self.draining else None
        if model is None:
            why = "shutting down" if self.draining else "loading its model"
            raise APIError(503, f"The server is {why}; retry shortly.", type="server_error",
                           code="unavailable", headers=self.retry_after())
        return model

    def retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.config.retry_after_s)}

    def _on_event(self, event: LoadEvent) -> None:
        log_event(event)
        if event.phase in ("unchanged", "failed"):
            self.metrics.swaps.labels(event.phase).inc()

    def _on_swap(self, old: LoadedModel | None, new: LoadedModel) -> None:
        def ident(m: LoadedModel) -> tuple:
            return (m.label, m.md5, m.resolved.format)

        self.metrics.served(ident(old) if old else None, ident(new))
        self.metrics.swaps.labels("swapped").inc()


def create_app(config: ServeConfig, source: ModelSource, *, deploy: DeployHandler | None = None,
               opener: Opener | None = None, metrics: ServeMetrics | None = None,
               background: list[Background] | None = None, first: Target | None = None) -> Starlette:
    """The serving app for ``config.ref``. ``opener`` defaults to the project's backends with the
    configured threads and device; ``deploy`` enables ``POST /hooks/deploy``; ``background`` tasks
    start with the app and stop first when it drains; ``first`` is the first thing to load (default
    ``config.ref``, what it names when the app starts)."""
    if opener is None:
        def opener(resolved):
            return open_model(resolved, threads=config.threads, device=config.device)
    state = ServeState(config, source, opener, deploy, metrics or ServeMetrics(), list(background or []), first)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    routes = [
        Route("/v1/completions", completions.handle, methods=["POST"]),
        Route("/v1/chat/completions", completions.handle_chat, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/hooks/deploy", deploy_hook, methods=["POST"]),
    ]
    # each handler takes its own exception type; starlette's dict type asks for one taking any
    handlers: dict[Any, Any] = {HTTPException: http_error, APIError: api_error, Exception: internal_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.serve = state
    app.add_middleware(AccessLog, metrics=state.metrics)
    return app


async def list_models(request: Request) -> JSONResponse:
    state = serve_state(request)
    current = state.manager.current if state.manager else None
    names = [state.name] + ([current.label] if current else [])
    return JSONResponse(model_list(names, state.started))


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    state = serve_state(request)
    status = state.manager.status() if state.manager else {"ready": False}
    status.update(ref=state.config.ref, draining=state.draining,
                  queue_depth=state.batcher.depth if state.batcher else 0)
    ok = status["ready"] and not state.draining
    return JSONResponse(status, status_code=200 if ok else 503,
                        headers=None if ok else state.retry_after())


async def metrics_endpoint(request: Request) -> Response:
    state = serve_state(request)
    body = state.metrics.exposition(state.batcher.depth if state.batcher else 0)
    return Response(body, media_type=CONTENT_TYPE)


async def deploy_hook(request: Request) -> JSONResponse:
    """Verify a signed delivery; act on it once (see :mod:`gitops.serve.hooks` for the answers)."""
    state = serve_state(request)
    if state.desk is None:
        raise APIError(404, "This server has no deploy hook configured.", code="not_found")
    body = await read_body(request, state.config.max_hook_bytes)
    answer = await run_in_threadpool(state.desk.handle, dict(request.headers), body)
    return JSONResponse({**answer, "serving": _serving(state)})


def _serving(state: ServeState) -> str | None:
    current = state.manager.current if state.manager else None
    return current.label if current else None

