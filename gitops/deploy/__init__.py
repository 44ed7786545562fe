"""Signed deploy webhooks (sender and receiver side) and chat notifications.

Sender: :func:`deploy` POSTs a signed JSON payload for each hooked alias that moved between two git
refs. Receiver: :func:`verify` checks signature, timestamp and replay. :func:`notify` posts to a
Slack-compatible webhook. Configuration: the ``deploy:`` and ``notify:`` sections of ``gitops.yaml``.
"""

from __future__ import annotations

from gitops.deploy.config import DeployConfig, Hook, NotifyConfig, parse_deploy, parse_notify
from gitops.deploy.notify import NotifyResult, notify
from gitops.deploy.signing import (
    BadBody,
    BadSignature,
    MissingHeader,
    ReplayCache,
    ReplayedDelivery,
    StaleTimestamp,
    WebhookRejected,
    signature,
    signed_headers,
    verify,
)
from gitops.deploy.webhooks import DeliveryResult, DeployFailed, DeployResult, deploy, plan

__all__ = [
    "BadBody", "BadSignature", "DeliveryResult", "DeployConfig", "DeployFailed", "DeployResult", "Hook",
    "MissingHeader", "NotifyConfig", "NotifyResult", "ReplayCache", "ReplayedDelivery", "StaleTimestamp",
    "WebhookRejected", "deploy", "notify", "parse_deploy", "parse_notify", "plan", "signature",
    "signed_headers", "verify",
]
