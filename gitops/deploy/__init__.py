"""Signed deploy webhooks (sender and receiver side) and chat notifications.

Sender: :func:`deploy` POSTs a signed JSON payload for each hooked alias that moved between two git
refs, under a stable delivery id. Receiver: :func:`verify` checks signature and timestamp (and
replay), :class:`DeliveryStore` acts on each delivery once, across restarts. :func:`notify` posts to a
Slack-compatible webhook. Configuration: the ``deploy:`` and ``notify:`` sections of ``gitops.yaml``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): a command that only reads gitops.yaml (its hooks live in
# gitops.core.settings) must not pay for the sender, the signer and the notifier.
_EXPORTS = {
    "deliveries": ("Answer", "Claim", "DeliveryStore"),
    "signing": ("BadBody", "BadSignature", "MissingHeader", "ReplayCache", "ReplayedDelivery", "StaleTimestamp",
                "WebhookRejected", "signature", "signed_headers", "verify"),
    "webhooks": ("DeliveryResult", "DeployFailed", "DeployResult", "deploy", "plan", "stable_delivery_id"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

# `notify` is both a submodule and its function: bind the function now, or importing the submodule
# first would leave `gitops.deploy.notify` meaning the module.
from gitops.deploy.notify import NotifyResult, notify  # noqa: E402


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gitops.deploy' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"gitops.deploy.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Answer", "BadBody", "BadSignature", "Claim", "DeliveryResult", "DeliveryStore", "DeployFailed", "DeployResult",
    "MissingHeader", "NotifyResult", "ReplayCache", "ReplayedDelivery", "StaleTimestamp", "WebhookRejected",
    "deploy", "notify", "plan", "signature", "signed_headers", "stable_delivery_id", "verify",
]
