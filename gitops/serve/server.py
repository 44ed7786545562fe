"""Running the app on uvicorn: in the foreground (the CLI) or in a thread (tests, benchmarks).

uvicorn's shutdown is the graceful one: on SIGTERM/SIGINT (or ``should_exit``) it stops accepting
connections, lets requests in flight finish (up to ``graceful_timeout_s``), then runs the app's
lifespan shutdown, which drains the batcher and closes the models.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from gitops.serve.connections import guarded_protocol
from gitops.serve.protocol import ConnectionLimits


def make_server(app, *, host: str = "127.0.0.1", port: int = 8000, graceful_timeout_s: float = 30.0,
                limits: ConnectionLimits | None = None) -> uvicorn.Server:
    """A uvicorn server for ``app``: our own JSON access log replaces uvicorn's, and uvicorn leaves
    the logging configuration to the caller. Every connection runs under ``limits`` (default: the
    app's ``ServeConfig.connections``) on the guarded h11 protocol (:mod:`gitops.serve.connections`),
    whichever HTTP parser is installed."""
    state = getattr(getattr(app, "state", None), "serve", None)
    limits = limits or (state.config.connections if state is not None else ConnectionLimits())
    metrics = state.metrics if state is not None else None
    protocol = guarded_protocol(limits, metrics and metrics.dropped_connection, metrics and metrics.accepted.inc)
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False, log_config=None,
                            timeout_graceful_shutdown=graceful_timeout_s,  # type: ignore[arg-type]  # asyncio waits a float
                            http=protocol,
                            timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
                            h11_max_incomplete_event_size=limits.max_head_bytes)
    server = uvicorn.Server(config)
    if state is not None:
        state.metrics.open_connections = lambda: len(server.server_state.connections)
    return server


class ServerThread:
    """``with ServerThread(app) as srv:`` serves ``app`` on 127.0.0.1 (a free port) in a thread;
    leaving the block shuts down gracefully, as a signal would."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, graceful_timeout_s: float = 30.0,
                 start_timeout_s: float = 30.0) -> None:
        # proto spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # without it every response waits ~40 ms for a delayed ACK (Nagle).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = make_server(app, host=host, port=self.port, graceful_timeout_s=graceful_timeout_s)
        self.start_timeout_s = start_timeout_s
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="gitops-serve-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        end = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Poll ``/readyz`` until it answers 200 (the first model loads in the background)."""
        from gitops.adapters import http
        from gitops.errors import GitopsError

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if http.get(self.url + "/readyz", {}, 5).status == 200:
                    return True
            except GitopsError:  # not listening yet, or no answer in time
                pass
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 60.0) -> bool:
        """Graceful shutdown; True when the server thread ended within ``timeout``."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
        return not self.thread.is_alive()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
