"""Signing deploy webhooks, and verifying them on the receiving side.

The signature is HMAC-SHA256 over ``timestamp + "." + body`` with a shared secret, sent as
``X-Gitops-Signature: sha256=<hex>`` next to ``X-Gitops-Timestamp`` (Unix seconds) and
``X-Gitops-Delivery`` (a UUID). Covering the timestamp lets a receiver refuse old captures; the
delivery id lets it refuse a capture replayed inside the time window. A retry of one delivery keeps
its delivery id and gets a fresh timestamp and signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from gitops.errors import DeployError

TIMESTAMP_HEADER = "X-Gitops-Timestamp"
SIGNATURE_HEADER = "X-Gitops-Signature"
DELIVERY_HEADER = "X-Gitops-Delivery"
EVENT_HEADER = "X-Gitops-Event"
SIGNATURE_PREFIX = "sha256="


class WebhookRejected(DeployError):
    """A received webhook failed verification; ``status`` is the HTTP status a receiver should answer."""

    status = 401


class MissingHeader(WebhookRejected):
    status = 400


class BadSignature(WebhookRejected):
    status = 401


class StaleTimestamp(WebhookRejected):
    status = 401


class ReplayedDelivery(WebhookRejected):
    status = 409


class BadBody(WebhookRejected):
    status = 400


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: str, body: bytes, delivery: str, *, now: float | None = None,
                   event: str = "alias.moved") -> dict[str, str]:
    """Every header a signed delivery carries, for ``body`` at time ``now`` (default: the clock)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        "User-Agent": "gitops-deploy",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: delivery,
        EVENT_HEADER: event,
    }


class ReplayCache:
    """Delivery ids seen recently, kept for ``ttl_s`` (longer than the timestamp tolerance, so a
    replay is caught by this cache or by the clock). Thread-safe; one process only: receivers
    with several processes need a shared store with the same ``add`` contract."""

    def __init__(self, ttl_s: float = 900.0, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, delivery: str, now: float | None = None) -> bool:
        """Record ``delivery``; False when it was already recorded (a replay)."""
        now = time.time() if now is None else now
        with self._lock:
            self._expire(now)
            if delivery in self._seen:
                return False
            self._seen[delivery] = now + self.ttl_s
            return True

    def discard(self, delivery: str) -> None:
        """Forget ``delivery``: a receiver that failed to act on it lets the sender's retry in."""
        with self._lock:
            self._seen.pop(delivery, None)

    def __contains__(self, delivery: object) -> bool:
        with self._lock:
            return delivery in self._seen

    def _expire(self, now: float) -> None:
        if len(self._seen) >= self.max_entries or (self._seen and next(iter(self._seen.values())) < now):
            self._seen = {k: t for k, t in self._seen.items() if t >= now}
        while len(self._seen) >= self.max_entries:  # still full of live ids: drop the oldest
            self._seen.pop(next(iter(self._seen)))


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    if value is None or not str(value).strip():
        raise MissingHeader(f"the webhook has no {name} header; it was not sent by gitops deploy")
    return str(value).strip()


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, tolerance_s: float = 300,
           seen: ReplayCache | None = None, now: float | None = None) -> dict[str, Any]:
    """Check a received webhook and return its JSON payload.

    Raises a :class:`WebhookRejected` subclass naming the reason: a missing header, a signature
    that does not match (compared in constant time), a timestamp more than ``tolerance_s`` away
    from the clock, or a delivery id already in ``seen`` (recorded only once everything else passed).
    """
    if not secret:
        raise DeployError("verify() needs the shared secret; it is empty")
    timestamp = _header(headers, TIMESTAMP_HEADER)
    sent = _header(headers, SIGNATURE_HEADER)
    delivery = _header(headers, DELIVERY_HEADER)
    expected = signature(secret, timestamp, body) if timestamp.isascii() else ""
    if not hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8")):
        raise BadSignature(f"the {SIGNATURE_HEADER} does not match the body and timestamp "
                           f"(wrong secret, or the request was altered)")
    if not timestamp.isdigit():
        raise StaleTimestamp(f"the {TIMESTAMP_HEADER} '{timestamp[:20]}' is not Unix seconds")
    skew = int(timestamp) - (time.time() if now is None else now)
    if abs(skew) > tolerance_s:
        when = "in the future" if skew > 0 else "old"
        raise StaleTimestamp(f"the webhook timestamp is {abs(skew):.0f} s {when} "
                             f"(tolerance {tolerance_s:g} s): refusing a stale or replayed delivery")
    if seen is not None and not seen.add(delivery, now):
        raise ReplayedDelivery(f"delivery {delivery} was already received: refusing a replay")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadBody("the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadBody("the webhook body is not a JSON object")
    return payload
