"""Connections that cannot starve the server: bounded head, body, idle and write time, and a cap.

uvicorn's HTTP/1.1 protocol (h11) bounds the size of a request head (16 KiB) and closes a
keep-alive connection idle after a response, but a connection that never finishes its head, or
its body, stays open forever, and ``limit_concurrency`` only answers once a head has arrived: a
few hundred clients trickling a byte at a time held every file descriptor and starved everyone
else (issue 17, hole 7). :class:`GuardedProtocol` is uvicorn's protocol with deadlines:

- **head**: a request head must arrive whole within ``head_timeout_s`` of the connection opening
  (or of the previous response, on a kept-alive connection); else the connection is closed (after
  a 408 when part of a head came);
- **body**: the body must arrive within ``body_timeout_s`` of its head. The app answers 408 itself
  when it reads the body (:func:`gitops.serve.web.read_body`); past a grace second more the
  connection is closed, for a route that never reads it;
- **write**: a response the client does not read (the socket's buffer full) for ``send_timeout_s``
  is dropped;
- **count**: at ``max_connections`` open, a new connection first evicts the one that has waited
  longest for a head (a trickler, or an idle kept-alive connection: no work is lost); when every
  connection is busy with a request, the newcomer gets a 503 and is closed at once. Never a hang.

The cap also stays below the process's file-descriptor limit, so accepting never fails on EMFILE
(asyncio then stops accepting for a second, for everyone).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gitops.serve.protocol import ConnectionLimits

BODY_GRACE_S = 1.0  # the app's own 408 goes first; the hard close follows


def _raw_response(status: int, reason: str, message: str, code: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "server_error" if status >= 500 else
                                 "invalid_request_error", "param": None, "code": code}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n" + ("retry-after: 1\r\n" if status == 503 else "") + "\r\n")
    return head.encode() + body


BUSY = _raw_response(503, "Service Unavailable", "The server has too many connections; retry shortly.", "busy")
HEAD_TIMEOUT = _raw_response(408, "Request Timeout", "The request head did not arrive in time.", "timeout")


def guarded_protocol(limits: ConnectionLimits, on_drop: Callable[[str], None] | None = None,
                     on_accept: Callable[[], None] | None = None) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with ``limits``; ``on_accept()`` counts each connection taken
    in, ``on_drop(reason)`` each one the bounds closed: ``limit`` (refused with 503), ``evicted``,
    ``head_timeout``, ``body_timeout``, ``send_timeout``."""
    return type("GuardedProtocol", (GuardedProtocol,), {
        "limits": limits, "cap": limits.effective_max(), "on_drop": staticmethod(on_drop or (lambda _r: None)),
        "on_accept": staticmethod(on_accept or (lambda: None))})


class GuardedProtocol(H11Protocol):
    """See the module docstring; made by :func:`guarded_protocol`, which sets the class attributes."""

    limits: ConnectionLimits = ConnectionLimits()
    cap: int = ConnectionLimits().max_connections
    on_drop: Callable[[str], None] = staticmethod(lambda _r: None)
    on_accept: Callable[[], None] = staticmethod(lambda: None)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._phase = "new"  # head (waiting for a request head), body, app (the request is in), closed
        self._since = 0.0
        self._heard = False  # a byte of the current head has arrived
        self._refused = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.on_accept()
        if len(self.connections) >= self.cap and not self._evict_one():
            self._refused, self.transport = True, transport
            self.on_drop("limit")
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = "closed"
        self._cancel()
        self._cancel_send()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase == "head" and data:
            self._heard = True
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self._send_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send()

    # -- the deadlines --

    def _follow(self) -> None:
        """Arm the deadline that fits where the request on this connection stands."""
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._phase != "head":  # a new head begins: on a fresh connection or after a response
                self._expect_head()
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout_s + BODY_GRACE_S)
        elif self._phase != "app":  # the whole request is in: the app's own timeouts bound the rest
            self._cancel()
            self._phase = "app"

    def _expect_head(self) -> None:
        self._heard = False
        self._arm("head", self.limits.head_timeout_s)

    def _arm(self, phase: str, seconds: float) -> None:
        self._cancel()
        self._phase, self._since = phase, time.monotonic()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_send(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._phase == "head" and self.conn.their_state is h11.IDLE:
            self.on_drop("head_timeout")
            if self._heard and self.conn.our_state is h11.IDLE:
                self.transport.write(HEAD_TIMEOUT)
            self._drop()
        elif self._phase == "body" and self.conn.their_state is h11.SEND_BODY:
            self.on_drop("body_timeout")
            self._drop()

    def _send_expired(self) -> None:
        self._send_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.on_drop("send_timeout")
            self.transport.abort()  # the buffer will never drain: drop it

    def _drop(self) -> None:
        """Close now; an app waiting for the body sees the client gone (``http.disconnect``)."""
        self._phase = "closed"
        self._cancel()
        self.connections.discard(self)
        self.transport.close()

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request head; False when none waits."""
        waiting = [c for c in self.connections if isinstance(c, GuardedProtocol) and c._phase == "head"
                   and c.transport is not None and not c.transport.is_closing()]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._since)
        self.on_drop("evicted")
        oldest._drop()
        return True
