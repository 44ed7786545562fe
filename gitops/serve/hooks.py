"""``POST /hooks/deploy``: the receiving end of ``gitops deploy``.

The handler trusts nothing in the payload beyond what the injected ``verify`` vouches for (the
signature, timestamp and replay checks of :mod:`gitops.deploy.signing` in practice), and does not
take the version to serve from it: the injected ``target`` answers "what should this server serve
now" (the registry-backed one reads the alias at the payload's commit), and the manager loads that
in the background. The answer is ``202`` at once: a load can take longer than a sender waits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops.errors import GitopsError

Verifier = Callable[[Mapping[str, str], bytes], dict[str, Any]]
"""``verify(headers, body) -> payload``; raises a GitopsError (with ``status``) to refuse."""
Target = Callable[[dict[str, Any]], "str | None"]
"""``target(payload) -> ref``: the reference to serve after this delivery, None when the delivery
is not for this server (another model or alias). May be slow (git fetch); runs off the loop."""
Forget = Callable[[Mapping[str, str]], None]
"""Undo the replay record of a delivery the server could not act on, so the sender's retry is let in."""


@dataclass(frozen=True)
class DeployHandler:
    """The injected parts of the deploy hook."""

    verify: Verifier
    target: Target
    forget: Forget | None = None


def rejection_status(exc: GitopsError) -> int:
    """The HTTP status a verifier's refusal asks for (``WebhookRejected.status``), else 401."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 401
