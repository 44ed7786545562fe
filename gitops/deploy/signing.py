"""Signing deploy webhooks, and verifying them on the receiving side.

Signature scheme ``v1``: HMAC-SHA256 with a shared secret over every header a receiver acts on
and the body, one per line::

    "v1" LF timestamp LF delivery LF event LF body

sent as ``X-Gitops-Signature: v1=<hex>`` next to ``X-Gitops-Timestamp`` (Unix seconds),
``X-Gitops-Delivery`` (a UUID) and ``X-Gitops-Event``. The timestamp lets a receiver refuse old
captures and the delivery id a capture replayed inside the time window; both are signed, so a
capture re-sent with a fresh ``X-Gitops-Delivery`` (or another ``X-Gitops-Event``) fails the
signature. A header cannot hold a line feed, so no two header sets sign the same message. A retry
of one delivery keeps its delivery id and gets a fresh timestamp and signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from gitops.errors import DeployError

TIMESTAMP_HEADER = "X-Gitops-Timestamp"
SIGNATURE_HEADER = "X-Gitops-Signature"
DELIVERY_HEADER = "X-Gitops-Delivery"
EVENT_HEADER = "X-Gitops-Event"
SCHEME = "v1"
SIGNATURE_PREFIX = f"{SCHEME}="
# Bounds on what a receiver reads before it trusts anything: a timestamp is Unix seconds (digits
# only, so int() never sees 5,000 of them), header values are short, bodies are small JSON objects.
TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")
MAX_HEADER_CHARS = 200
MAX_BODY_BYTES = 1 << 20


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


def signed_message(timestamp: str, delivery: str, event: str, body: bytes) -> bytes:
    """What the ``v1`` signature covers: the scheme, the three headers and the body, one per line."""
    return f"{SCHEME}\n{timestamp}\n{delivery}\n{event}\n".encode() + body


def signature(secret: str, timestamp: str, delivery: str, event: str, body: bytes) -> str:
    """``v1=<hex>`` of HMAC-SHA256(secret, :func:`signed_message`)."""
    if not secret:
        raise DeployError("cannot sign a webhook with an empty secret")
    mac = hmac.new(secret.encode("utf-8"), signed_message(timestamp, delivery, event, body), hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: str, body: bytes, delivery: str, *, now: float | None = None,
                   event: str = "alias.moved") -> dict[str, str]:
    """Every header a signed delivery carries, for ``body`` at time ``now`` (default: the clock)."""
    timestamp = str(int(time.time() if now is None else now))
    for name, value in ((DELIVERY_HEADER, delivery), (EVENT_HEADER, event)):
        if _bad_header_value(value):
            raise DeployError(f"cannot sign a webhook whose {name} is {value[:40]!r}: "
                              f"printable ASCII without line breaks, at most {MAX_HEADER_CHARS} characters")
    return {
        "Content-Type": "application/json",
        "User-Agent": "gitops-deploy",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, delivery, event, body),
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


def _bad_header_value(value: str) -> bool:
    """True unless ``value`` is short printable ASCII: what a header may carry into the signed message."""
    return not (0 < len(value) <= MAX_HEADER_CHARS and value.isascii() and value.isprintable())


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    if value is None or not str(value).strip():
        raise MissingHeader(f"the webhook has no {name} header; it was not sent by gitops deploy")
    value = str(value).strip()
    if _bad_header_value(value):
        raise MissingHeader(f"the webhook's {name} header is not a short printable ASCII value; "
                            "it was not sent by gitops deploy")
    return value


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, tolerance_s: float = 300,
           seen: ReplayCache | None = None, now: float | None = None) -> dict[str, Any]:
    """Check a received webhook and return its JSON payload.

    Raises a :class:`WebhookRejected` subclass naming the reason: a missing or malformed header, a
    signature that does not match the timestamp, delivery id, event and body (compared in constant
    time), a timestamp more than ``tolerance_s`` away from the clock, a body that is not a JSON
    object or whose ``delivery`` differs from the header, or a delivery id already in
    ``seen`` (recorded only once everything else passed). Any input gives a verdict, never a crash.
    """
    if not isinstance(secret, str) or not secret:
        raise DeployError("verify() needs the shared secret; it is empty")
    timestamp = _header(headers, TIMESTAMP_HEADER)
    sent = _header(headers, SIGNATURE_HEADER)
    delivery = _header(headers, DELIVERY_HEADER)
    event = _header(headers, EVENT_HEADER)
    if not isinstance(body, (bytes, bytearray)) or len(body) > MAX_BODY_BYTES:
        raise BadBody(f"the webhook body is not bytes of at most {MAX_BODY_BYTES} bytes")
    if not sent.startswith(SIGNATURE_PREFIX):
        scheme = sent.split("=", 1)[0][:20] if "=" in sent else "none"
        raise BadSignature(f"the {SIGNATURE_HEADER} uses scheme '{scheme}', not '{SCHEME}' "
                           f"(a sender older than the {SCHEME} scheme, which also signs the delivery id and event)")
    expected = signature(secret, timestamp, delivery, event, bytes(body))
    if not hmac.compare_digest(sent.encode("ascii"), expected.encode("ascii")):
        raise BadSignature(f"the {SIGNATURE_HEADER} does not match the body, timestamp, delivery id and event "
                           f"(wrong secret, or the request was altered)")
    if not TIMESTAMP_RE.fullmatch(timestamp):
        raise StaleTimestamp(f"the {TIMESTAMP_HEADER} '{timestamp[:20]}' is not Unix seconds")
    skew = int(timestamp) - (time.time() if now is None else now)
    if abs(skew) > tolerance_s:
        when = "in the future" if skew > 0 else "old"
        raise StaleTimestamp(f"the webhook timestamp is {abs(skew):.0f} s {when} "
                             f"(tolerance {tolerance_s:g} s): refusing a stale or replayed delivery")
    payload = _payload(bytes(body), delivery)
    if seen is not None and not seen.add(delivery, now):
        raise ReplayedDelivery(f"delivery {delivery} was already received: refusing a replay")
    return payload


def _payload(body: bytes, delivery: str) -> dict[str, Any]:
    """The JSON object in ``body``; its ``delivery``, when it has one, must be the header's (a payload
    template may leave it out; the header is signed either way)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nesting 100,000 deep
        raise BadBody("the webhook body is not JSON (or nests too deep)") from None
    if not isinstance(payload, dict):
        raise BadBody("the webhook body is not a JSON object")
    if "delivery" in payload and payload["delivery"] != delivery:
        raise BadBody(f"the body's 'delivery' is not the {DELIVERY_HEADER} header's value: "
                      "refusing a mixed-up delivery")
    return payload
