"""``gitops serve --follow``: poll the git remote instead of waiting for deploy webhooks.

Every ``interval_s`` the follower fetches and looks at the followed branch's tip. Only when the
tip moved does it read the registry there, and only when the alias names another version than the
one served does it ask for a load (pinned to that commit), so an idle poll costs one ``git fetch``.
A failing poll (the remote unreachable) is logged and retried at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gitops.core.refs import Ref
from gitops.errors import GitopsError
from gitops.serve.manager import ModelManager
from gitops.serve.repo_source import RepoSource
from gitops.serve.source import Target

log = logging.getLogger("gitops.serve")
MIN_INTERVAL_S = 1.0


class Follower:
    """A background poller; ``start(manager)`` returns its ``stop`` (what ``create_app`` runs)."""

    def __init__(self, source: RepoSource, interval_s: float) -> None:
        if not interval_s >= MIN_INTERVAL_S:
            raise GitopsError(f"the poll interval is {interval_s} s; at least {MIN_INTERVAL_S:g} s")
        self.source, self.interval_s = source, interval_s
        self._stop = threading.Event()
        self._last: str | None = None

    def start(self, manager: ModelManager) -> Callable[[], None]:
        thread = threading.Thread(target=self._loop, args=(manager,), name="gitops-serve-follow", daemon=True)
        thread.start()

        def stop() -> None:
            self._stop.set()
            thread.join(30)

        return stop

    def _loop(self, manager: ModelManager) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll(manager)
            except GitopsError as exc:
                log.warning("follow: %s", exc.message, extra={"fields": {"phase": "follow", "error": exc.message}})

    def poll(self, manager: ModelManager) -> Target | None:
        """One poll; returns the target it asked the manager to load, if any."""
        tip = self.source.tip()
        status = manager.status()
        if tip == self._last or status["loading"]:
            return None  # nothing moved, or a load is running (look again next time)
        model, version = self.source.model_version_at(tip)
        target = Target(Ref(model.name, version.id), tip)
        label = str(target.ref)
        self._last = tip
        if (status["version"], status["md5"]) == (label, version.md5):
            return None
        log.info("follow: %s moved to %s at %s", self.source.ref, label, tip[:12],
                 extra={"fields": {"phase": "follow", "version": label, "commit": tip}})
        manager.request(target)
        return target
