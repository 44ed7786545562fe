"""``gitops deploy``: a signed webhook for every hooked alias that moved between two git refs.

Plan first (which hooks, which payloads: what ``--dry-run`` shows), then send each delivery with
retries and exponential backoff on 5xx, 429, 409, connection errors and timeouts. A 409 means the
receiver is still working on this delivery (an earlier attempt, or an earlier run of the workflow):
ask again later, never count it as delivered. Any other 4xx means the receiver refused this
delivery (bad secret, unknown model): retrying cannot help. Only a 2xx is success.

Delivery ids are stable: the same hook, model, alias, version and commit always get the same id,
so a retry, a re-run of the deploy workflow or a second ``gitops deploy`` for the same push are
one delivery to a receiver that de-duplicates (:class:`gitops.deploy.DeliveryStore`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops.adapters import http
from gitops.core import layout
from gitops.core.settings import Hook
from gitops.core.workspace import Workspace
from gitops.deploy.signing import signed_headers
from gitops.errors import DeployError
from gitops.registry.changes import NULL_SHA
from gitops.registry.diff import diff

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
EVENT = "alias.moved"
# uuid5 namespace of delivery ids (a fixed, arbitrary UUID: changing it changes every id).
DELIVERY_NAMESPACE = uuid.UUID("8c0f6f0e-4d1b-5a52-9b7e-6a1f0d3c2b19")
RETRIED_4XX = (409, 429)  # in progress / rate-limited: the same request may pass later


@dataclass
class Delivery:
    """One planned POST: a hook, the alias move that fires it, and the payload it carries."""

    hook: Hook
    model: str
    alias: str
    version: str
    previous: str | None
    payload: dict[str, Any]
    delivery_id: str

    @property
    def body(self) -> bytes:
        # Compact and key-ordered as planned: the receiver verifies these exact bytes.
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class DeliveryResult:
    hook: str
    host: str
    model: str
    alias: str
    version: str
    previous: str | None
    delivery_id: str
    sent: bool  # False for a dry run
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    answer: str | None = None  # what the receiver said it did ("deployed", "already deployed" ...)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DeployResult:
    base: str
    head: str
    dry_run: bool
    deliveries: list[DeliveryResult] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    unhooked: list[str] = field(default_factory=list)  # "model@alias" moves no hook listens to
    # "model@alias" moves of unprotected aliases that only hooks naming no models listen to: such a
    # hook acts on protected aliases alone (anyone may add a model with an unprotected production)
    unprotected: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # "model@alias" aliases deleted: nothing to deploy


class DeployFailed(DeployError):
    """At least one delivery failed; ``result`` holds every delivery, the good ones included."""

    def __init__(self, message: str, result: DeployResult, problems: list[str]) -> None:
        super().__init__(message, problems=problems)
        self.result = result


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """Fill ``{placeholders}`` in a payload template. A string that is exactly one placeholder takes
    the value itself (so ``"{previous_version}"`` stays JSON null); others are formatted as text."""
    if isinstance(template, dict):
        return {k: render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in values:
            return values[template[1:-1]]
        return template.format_map({k: "" if v is None else v for k, v in values.items()})
    return template


def payload_values(model: str, alias: str, old: str | None, version: Any, *, commit: str, base_commit: str,
                   repository: str, protected: bool, delivery_id: str) -> dict[str, Any]:
    """Everything a payload may carry about one alias move (the template placeholders)."""
    return {
        "event": EVENT, "model": model, "alias": alias, "version": version.id, "previous_version": old,
        "protected": protected, "format": version.format, "quantization": version.quantization,
        "md5": version.md5, "base_model": version.base_model, "dvc_file": layout.pointer(version),
        "weights_path": version.path, "commit": commit, "base_commit": base_commit,
        "repository": repository, "delivery": delivery_id,
    }


def plan(ws: Workspace, base: str, head: str, hooks: list[Hook], *, repository: str = ""
         ) -> tuple[DeployResult, list[Delivery]]:
    """The deliveries ``gitops deploy`` would send for the alias moves from ``base`` to ``head``,
    and a dry-run result describing them."""
    head_commit = ws.git.resolve(head)
    base_commit = base if base == NULL_SHA else ws.git.resolve(base)
    changes = diff(ws, base_commit, head_commit)
    registry = ws.registry_at(head_commit)
    result = DeployResult(base=base_commit, head=head_commit, dry_run=True)
    planned: list[Delivery] = []
    for move in changes.alias_moves:
        if move.new is None:
            result.removed.append(f"{move.model}@{move.alias}")
            continue
        wanted = [h for h in hooks if h.wants(move.model, move.alias, move.protected)]
        if not wanted and any(h.wants(move.model, move.alias, True) for h in hooks):
            result.unprotected.append(f"{move.model}@{move.alias}")
        elif not wanted:
            result.unhooked.append(f"{move.model}@{move.alias}")
        _, version = registry.resolve(f"{move.model}@{move.new}")
        for hook in wanted:
            delivery_id = stable_delivery_id(hook.name, move.model, move.alias, move.new, head_commit)
            values = payload_values(move.model, move.alias, move.old, version, commit=head_commit,
                                    base_commit=base_commit, repository=repository, protected=move.protected,
                                    delivery_id=delivery_id)
            body = render(hook.payload, values) if hook.payload is not None else values
            planned.append(Delivery(hook, move.model, move.alias, move.new, move.old, body, delivery_id))
    planned.sort(key=lambda d: (d.hook.name, d.model, d.alias))
    result.deliveries = [_result(d, sent=False) for d in planned]
    result.payloads = [d.payload for d in planned]
    return result, planned


def stable_delivery_id(hook: str, model: str, alias: str, version: str, commit: str) -> str:
    """The delivery id of one alias move sent to one hook: a UUID derived from what is delivered,
    so every attempt and every re-run of the same deploy carries the same id (and a receiver that
    completed it answers "already deployed" instead of deploying twice)."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, "\n".join((hook, model, alias, version, commit))))


def _result(d: Delivery, sent: bool) -> DeliveryResult:
    return DeliveryResult(hook=d.hook.name, host=d.hook.host, model=d.model, alias=d.alias, version=d.version,
                          previous=d.previous, delivery_id=d.delivery_id, sent=sent)


def _backoff(attempt: int, retry_after: str | None, base_s: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): doubling, capped, or Retry-After."""
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after.strip()), BACKOFF_CAP_S)
    return min(base_s * 2 ** (attempt - 1), BACKOFF_CAP_S)


def send(delivery: Delivery, secret: str, *, sleep: Callable[[float], None] = time.sleep,
         backoff_s: float = BACKOFF_BASE_S) -> DeliveryResult:
    """POST one delivery, retrying what may pass on a second try; never raises for HTTP outcomes."""
    hook, body, result = delivery.hook, delivery.body, _result(delivery, sent=True)
    for attempt in range(1, hook.retries + 2):
        result.attempts = attempt
        headers = signed_headers(secret, body, delivery.delivery_id, event=EVENT)  # fresh timestamp each try
        try:
            resp = http.post(hook.url, body, headers, hook.timeout_s)
        except http.HttpUnreachable as exc:
            result.status, result.error, retry_after = None, str(exc), None
        else:
            result.status, retry_after = resp.status, resp.headers.get("Retry-After")
            if 200 <= resp.status < 300:  # the only success: the receiver says it is deployed
                result.error, result.answer = None, _answer(resp)
                return result
            result.error = f"{hook.host} answered HTTP {resp.status}" + _snippet(resp.text)
            if resp.status < 500 and resp.status not in RETRIED_4XX:
                break  # refused (bad secret, unknown model ...): the same request will fail again
        if attempt <= hook.retries:
            sleep(_backoff(attempt, retry_after, backoff_s))
    result.error = f"hook '{hook.name}' ({hook.host}): {result.error} after {result.attempts} attempt(s)"
    return result


def _answer(resp: http.HttpResponse) -> str | None:
    """The receiver's word on a 2xx: a JSON body's ``status`` (``gitops serve``), else the reason phrase."""
    try:
        status = json.loads(resp.text).get("status") if resp.text.lstrip().startswith("{") else None
    except (ValueError, AttributeError):
        status = None
    text = status if isinstance(status, str) else resp.reason
    return " ".join(text.split())[:60] or None


def _snippet(text: str) -> str:
    """What the receiver said, for the error line: an error body's message (OpenAI's shape
    ``{"error": {"message": ...}}`` or ``{"message": ...}``), else the text; bounded."""
    try:
        body = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        inner = error if isinstance(error, dict) else body
        if isinstance(inner.get("message"), str):
            text = inner["message"]
    text = " ".join(text.split())[:240]
    return f": {text}" if text else ""


def deploy(ws: Workspace, base: str, head: str, *, dry_run: bool = False, env: Mapping[str, str] | None = None,
           sleep: Callable[[float], None] = time.sleep, backoff_s: float = BACKOFF_BASE_S,
           on_result: Callable[[DeliveryResult], None] | None = None) -> DeployResult:
    """Send (or with ``dry_run`` only plan) the deploy webhooks for alias moves from ``base`` to ``head``.

    Secrets come from the environment variables the hooks name; every one is checked before the
    first POST so a missing secret sends nothing. Raises :class:`DeployFailed` after trying every
    delivery when any of them failed.
    """
    env = os.environ if env is None else env
    settings = ws.settings
    result, planned = plan(ws, base, head, settings.deploy.hooks, repository=settings.repository(dict(env)))
    if dry_run or not planned:
        result.dry_run = dry_run
        return result
    missing = sorted({d.hook.secret_env for d in planned if not env.get(d.hook.secret_env)})
    if missing:
        raise DeployError(f"the deploy secret is not set: environment variable {', '.join(missing)} is empty "
                          f"(in GitHub Actions, map it from a secret in the 'production' environment)")
    result.dry_run = False
    result.deliveries = []
    for d in planned:
        outcome = send(d, env[d.hook.secret_env], sleep=sleep, backoff_s=backoff_s)
        result.deliveries.append(outcome)
        if on_result is not None:
            on_result(outcome)
    failed = [r.error for r in result.deliveries if r.error]
    if failed:
        raise DeployFailed(f"{len(failed)} of {len(planned)} deploy webhook(s) failed:", result, failed)
    return result
