"""``POST /hooks/deploy``: the receiving end of ``gitops deploy``, acting on each delivery once.

The handler trusts nothing in the payload beyond what the injected ``verify`` vouches for (the
signature and timestamp checks of :mod:`gitops.deploy.signing`), and does not take the version to
serve from it: the injected ``target`` answers "what should this server serve now" (the
registry-backed one reads the alias at the payload's commit). A durable
:class:`~gitops.deploy.DeliveryStore` makes each delivery id act once, across restarts:

- a delivery completed before (even by an earlier process) is answered 200 ``already deployed``;
- a new one is verified, targeted and loaded; the attempt waits up to ``wait_s`` for its load and
  answers 200 ``deployed`` (swapped, or already serving that version), 422 when the version was
  refused (a tampered file, a commit not on the followed branch), 503 when it may pass later (git or
  the DVC remote unreachable), or 409 with ``Retry-After`` while the load still runs;
- an attempt for a delivery still at work waits for it the same way, else 409 ``in progress``.

A failed delivery is dropped from the store, so the sender's retry (or a re-run) tries it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops.deploy.deliveries import DONE, NEW, RUNNING, Claim, DeliveryStore
from gitops.errors import ConfigError, DataError, EvalError, GitopsError, NotFoundError, RegistryError, RepoStateError
from gitops.serve.manager import ModelManager, Ticket
from gitops.serve.protocol import APIError
from gitops.serve.source import Resolved, Target

DELIVERY_HEADER = "x-gitops-delivery"
Verifier = Callable[[Mapping[str, str], bytes], dict[str, Any]]
"""``verify(headers, body) -> payload``; raises a GitopsError (with ``status``) to refuse."""
# Failures that will fail again the same way: the sender should not retry them (422).
REFUSALS = (ConfigError, DataError, EvalError, NotFoundError, RegistryError, RepoStateError)


@dataclass(frozen=True)
class Decision:
    """What a delivery asks of this server: load ``target`` (a :class:`~gitops.serve.source.Target`
    for a repository, a reference for a :class:`~gitops.serve.source.DirSource`), or nothing
    (``reason`` says why)."""

    target: Target | str | None
    reason: str = ""


TargetFn = Callable[[dict[str, Any], "Resolved | None"], Decision]
"""``target(payload, serving) -> Decision``: the reference to serve after this delivery, given what
is served now; ``Decision(None, why)`` when it is about another model or alias, or older than what
is served. May be slow (git fetch); runs off the event loop."""


@dataclass(frozen=True)
class DeployHandler:
    """The injected parts of the deploy hook: the verifier, the target, the durable delivery record
    (None: no de-duplication, every delivery acts) and how long one attempt waits for its load."""

    verify: Verifier
    target: TargetFn
    store: DeliveryStore | None = None
    wait_s: float = 8.0


def signed_verifier(secret: str, *, tolerance_s: float = 300) -> Verifier:
    """``verify(headers, body)`` with the deploy package's signature and timestamp checks. Replays
    need no cache of their own here: a delivery id seen before meets the delivery store."""
    if not secret:
        raise ConfigError("the deploy hook needs its shared secret; it is empty")

    def verify(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        from gitops.deploy.signing import verify as verify_signed

        return verify_signed(headers, body, secret, tolerance_s=tolerance_s)

    return verify


def rejection_status(exc: GitopsError) -> int:
    """The HTTP status a verifier's refusal asks for (``WebhookRejected.status``), else 401."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 401


class DeliveryDesk:
    """Runs deliveries for one app: claims, targets, load tickets and the answers (blocking calls;
    the route runs :meth:`handle` in a worker thread)."""

    def __init__(self, handler: DeployHandler, manager: ModelManager, retry_after: dict[str, str]) -> None:
        self.handler, self.manager, self.retry_after = handler, manager, retry_after
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def handle(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The 200 answer's body for one attempt; raises :class:`APIError` for every other answer."""
        try:
            payload = self.handler.verify(headers, body)
        except GitopsError as exc:
            raise APIError(rejection_status(exc), f"Deploy webhook refused: {exc.message}",
                           type="authentication_error", code="webhook_rejected") from None
        delivery = {k.lower(): v for k, v in headers.items()}.get(DELIVERY_HEADER, "")
        claim = self._claim(delivery)
        if claim.state == DONE:
            return {**claim.record, "status": "already deployed", "delivery": delivery}
        if claim.state == RUNNING:
            with self._lock:
                ticket = self._tickets.get(delivery)
            if ticket is None:  # an earlier attempt is still asking what to serve
                raise self._in_progress(delivery, "deciding what to serve")
            return self._answer(delivery, ticket)
        decision = self._decide(delivery, payload)
        if decision.target is None:
            record = {"status": "ignored", "reason": decision.reason}
            self._finish(delivery, record)
            return {**record, "delivery": delivery}
        ticket = self.manager.request(decision.target)
        with self._lock:
            self._tickets[delivery] = ticket
        ticket.add_done_callback(lambda t: self._settle(delivery, t))
        return self._answer(delivery, ticket)

    def _claim(self, delivery: str) -> Claim:
        store = self.handler.store
        return store.begin(delivery) if store is not None and delivery else Claim(delivery, NEW)

    def _decide(self, delivery: str, payload: dict[str, Any]) -> Decision:
        current = self.manager.current
        try:
            return self.handler.target(payload, current.resolved if current else None)
        except GitopsError as exc:
            self._release(delivery)
            refused = isinstance(exc, REFUSALS)
            raise APIError(422 if refused else 503, f"Cannot tell what to serve after this delivery: {exc.message}",
                           type="invalid_request_error" if refused else "server_error",
                           code="target_refused" if refused else "target_unavailable",
                           headers=None if refused else self.retry_after) from None
        except BaseException:
            self._release(delivery)
            raise

    def _answer(self, delivery: str, ticket: Ticket) -> dict[str, Any]:
        if not ticket.wait(self.handler.wait_s):
            raise self._in_progress(delivery, f"loading {ticket.ref}")
        event = ticket.event
        assert event is not None  # a ticket that finished waiting holds its event
        if event.phase in ("swapped", "unchanged"):
            return {**_record(ticket), "delivery": delivery}
        current = self.manager.current
        serving = f"{current.label} still serves" if current else "nothing serves yet"
        refused = isinstance(ticket.error, REFUSALS)
        raise APIError(422 if refused else 503, f"Not deployed, {serving}: {event.error}",
                       type="invalid_request_error" if refused else "server_error",
                       code="load_refused" if refused else "load_failed",
                       headers=None if refused else self.retry_after)

    def _settle(self, delivery: str, ticket: Ticket) -> None:
        """When a delivery's load ends: record it as done, or drop it so a retry runs it again."""
        with self._lock:
            self._tickets.pop(delivery, None)
        assert ticket.event is not None  # the load ended
        if ticket.event.phase in ("swapped", "unchanged"):
            self._finish(delivery, _record(ticket))
        else:
            self._release(delivery)

    def _finish(self, delivery: str, record: dict[str, Any]) -> None:
        if self.handler.store is not None and delivery:
            self.handler.store.finish(delivery, record)

    def _release(self, delivery: str) -> None:
        if self.handler.store is not None and delivery:
            self.handler.store.release(delivery)

    def _in_progress(self, delivery: str, doing: str) -> APIError:
        return APIError(409, f"Delivery {delivery} is in progress ({doing}); retry later.", type="server_error",
                        code="in_progress", headers=self.retry_after)


def _record(ticket: Ticket) -> dict[str, Any]:
    event = ticket.event
    assert event is not None  # recorded only once loaded
    return {"status": "deployed", "version": event.version, "md5": event.md5, "ref": ticket.ref,
            "result": event.phase}
