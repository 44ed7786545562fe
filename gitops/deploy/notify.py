"""Chat notifications: ``{"text": ...}`` to a Slack-compatible incoming webhook.

The webhook URL is a secret (anyone holding it can post), so ``gitops.yaml`` names the environment
variable that holds it (``notify.slack_webhook_env``) and messages show only its host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from gitops.adapters import http
from gitops.core.settings import NotifyConfig, url_problem
from gitops.core.workspace import Workspace
from gitops.errors import DeployError

TIMEOUT_S = 10.0


@dataclass
class NotifyResult:
    sent: bool
    reason: str  # what happened, in one sentence a CLI can print


def notify(ws: Workspace | None, text: str, *, config: NotifyConfig | None = None, event: str | None = None,
           env: Mapping[str, str] | None = None) -> NotifyResult:
    """Post ``text`` to the configured chat webhook.

    ``config`` defaults to the ``notify:`` section of the Workspace's ``gitops.yaml`` (none without
    a Workspace). ``event`` (``deploy`` or
    ``report``) sends only when listed in ``notify.on``; None always sends. Not configured, or the
    variable unset: nothing is sent and the reason says why (notifications never block a deploy).
    A webhook that refuses the message raises :class:`DeployError`.
    """
    env = os.environ if env is None else env
    if config is None:
        config = ws.settings.notify if ws is not None else NotifyConfig()
    if not text.strip():
        raise DeployError("the notification text is empty")
    if not config.slack_webhook_env:
        return NotifyResult(False, "notifications are not configured (notify.slack_webhook_env in gitops.yaml)")
    if event is not None and event not in config.on:
        return NotifyResult(False, f"notifications for '{event}' are off (notify.on in gitops.yaml)")
    url = env.get(config.slack_webhook_env, "")
    if not url:
        return NotifyResult(False, f"not sent: environment variable {config.slack_webhook_env} is not set")
    if problem := url_problem(url):
        raise DeployError(f"{config.slack_webhook_env} {problem}")
    body = json.dumps({"text": text}).encode("utf-8")
    resp = http.post(url, body, {"Content-Type": "application/json", "User-Agent": "gitops-notify"}, TIMEOUT_S)
    if not 200 <= resp.status < 300:
        raise DeployError(f"the chat webhook at {http.host_of(url)} answered HTTP {resp.status}")
    return NotifyResult(True, f"sent to {http.host_of(url)}")
