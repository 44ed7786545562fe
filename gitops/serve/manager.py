"""Which version serves, and live swaps with Triton's reload semantics.

A swap fetches the target through the :class:`~gitops.serve.source.ModelSource`, opens and warms
the new version in a background thread beside the old one, then replaces the current model in one
step under a lock. Requests admitted before that step finish on the old model (they pinned it);
requests admitted after it get the new one; the old model is closed when its last request is done.
If anything fails (resolving, an integrity check, opening, warming up) the old model keeps serving
and the error is kept for ``/readyz`` and the logs. Requests for new targets while a load runs are
coalesced: the loader goes on with the newest one. Each request gets a :class:`Ticket` that
is settled with the outcome of the load that took it (the deploy hook answers from it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from gitops.errors import GitopsError
from gitops.serve.engine import LoadedModel, Opener
from gitops.serve.source import ModelSource, Resolved, Target

log = logging.getLogger("gitops.serve")


@dataclass(frozen=True)
class LoadEvent:
    """A step of a load, for the progress line and the logs: ``phase`` is ``resolving``,
    ``loading``, ``swapped``, ``unchanged`` or ``failed``."""

    phase: str
    ref: str
    version: str | None = None
    md5: str | None = None
    seconds: float | None = None
    error: str | None = None


EventSink = Callable[[LoadEvent], None]


class Ticket:
    """The outcome of one :meth:`ModelManager.request`: the final :class:`LoadEvent` (``swapped``,
    ``unchanged`` or ``failed``) of the load that took it, and the exception of a failure. Requests
    coalesced into a newer one share that load's outcome."""

    def __init__(self, ref: str) -> None:
        self.ref = ref  # what was asked, as shown
        self.event: LoadEvent | None = None
        self.error: Exception | None = None
        self._settled = False
        self._done = threading.Event()
        self._callbacks: list[Callable[[Ticket], None]] = []
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the outcome is known and its callbacks ran (within ``timeout`` seconds)."""
        return self._done.wait(timeout)

    def add_done_callback(self, fn: Callable[[Ticket], None]) -> None:
        """Call ``fn(ticket)`` when the outcome is known (now, if it already is)."""
        with self._lock:
            if not self._settled:
                self._callbacks.append(fn)
                return
        fn(self)

    def settle(self, event: LoadEvent, error: Exception | None = None) -> None:
        """Set the outcome (once), run the callbacks, then wake the waiters: whoever waited sees
        what the callbacks recorded."""
        with self._lock:
            if self._settled:
                return
            self.event, self.error, self._settled = event, error, True
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # one failing listener must not stop the loader
                log.exception("a load ticket callback failed")
        self._done.set()


def log_event(event: LoadEvent) -> None:
    """The default sink: one structured log line per step (errors at ERROR level)."""
    fields = {k: v for k, v in asdict(event).items() if v is not None}
    level = logging.ERROR if event.phase == "failed" else logging.INFO
    log.log(level, "load %s %s", event.phase, event.version or event.ref, extra={"fields": fields})


class ModelManager:
    """Holds the current model and swaps it in the background on :meth:`request`."""

    def __init__(self, source: ModelSource, opener: Opener, *, on_event: EventSink = log_event,
                 on_swap: Callable[[LoadedModel | None, LoadedModel], None] | None = None) -> None:
        self.source, self.opener = source, opener
        self.on_event, self.on_swap = on_event, on_swap
        self._current: LoadedModel | None = None
        self._wanted: Target | str | None = None
        self._tickets: list[Ticket] = []
        self._loading: dict | None = None
        self._last_error: dict | None = None
        self.swaps = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="gitops-serve-loader", daemon=True)
        self._thread.start()

    # -- the request path --

    def acquire(self, n: int = 1) -> LoadedModel | None:
        """The current model, pinned ``n`` times (the caller unpins), or None before the first load."""
        with self._lock:
            model = self._current
            if model is not None:
                model.pin(n)
            return model

    @property
    def current(self) -> LoadedModel | None:
        with self._lock:
            return self._current

    # -- swaps --

    def request(self, target: Target | str) -> Ticket:
        """Serve ``target`` (a version at a commit; or a reference, what it names now): load it in
        the background (coalescing with a pending one). The source gets ``target`` as it is."""
        ticket = Ticket(str(target))
        with self._lock:
            if self._stopping:
                ticket.settle(LoadEvent("failed", str(target), error="the server is shutting down"))
                return ticket
            self._wanted = target
            self._tickets.append(ticket)
            self._wake.notify_all()
        return ticket

    def wait_idle(self, timeout: float) -> bool:
        """Block until no load is pending or running (tests, the CLI's first load)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._wanted is not None or self._loading is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
            return True

    def status(self) -> dict:
        """What ``/readyz`` shows: the version served, a load in progress, the last failure."""
        with self._lock:
            model = self._current
            return {
                "ready": model is not None,
                "version": model.label if model else None,
                "md5": model.md5 if model else None,
                "format": model.resolved.format if model else None,
                "base": model.resolved.base if model else None,
                "commit": model.resolved.commit if model else None,
                "swaps": self.swaps,
                "loading": dict(self._loading) if self._loading else None,
                "last_error": dict(self._last_error) if self._last_error else None,
            }

    def close(self, timeout: float = 30.0) -> None:
        """Stop the loader (a running load finishes first, up to ``timeout``) and retire the model."""
        with self._lock:
            self._stopping = True
            self._wanted = None
            dropped, self._tickets = self._tickets, []
            self._wake.notify_all()
        for ticket in dropped:
            ticket.settle(LoadEvent("failed", ticket.ref, error="the server is shutting down"))
        self._thread.join(timeout)
        with self._lock:
            model, self._current = self._current, None
        if model is not None:
            model.retire()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._wanted is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                target, self._wanted = self._wanted, None
                tickets, self._tickets = self._tickets, []
                self._loading = {"ref": str(target), "phase": "resolving", "since": time.time()}
            assert target is not None  # taken only when one was wanted (returned above otherwise)
            event, error = LoadEvent("failed", str(target), error="the load did not finish"), None
            try:
                event, error = self._load(target)
            finally:
                with self._lock:
                    self._loading = None
                    self._wake.notify_all()
                for ticket in tickets:
                    ticket.settle(event, error)

    def _load(self, target: Target | str) -> tuple[LoadEvent, Exception | None]:
        t0, ref = time.perf_counter(), str(target)
        self.on_event(LoadEvent("resolving", ref))
        try:
            resolved = self.source.fetch(target)
            current = self.current
            if current is not None and (current.label, current.md5) == (resolved.version_label, resolved.md5):
                event = LoadEvent("unchanged", ref, resolved.version_label, resolved.md5)
                self.on_event(event)
                with self._lock:
                    self._last_error = None
                    current.resolved = resolved  # the same files, now known at a newer commit
                return event, None
            self._set_phase("loading", resolved)
            self.on_event(LoadEvent("loading", ref, resolved.version_label, resolved.md5))
            model = self.opener(resolved)
        except Exception as exc:  # noqa: BLE001 - any failure must keep the old model serving
            return self._fail(ref, exc, time.perf_counter() - t0), exc
        if not self._swap(model):
            return LoadEvent("failed", ref, model.label, model.md5, error="the server is shutting down"), None
        event = LoadEvent("swapped", ref, model.label, model.md5, round(time.perf_counter() - t0, 3))
        self.on_event(event)
        return event, None

    def _set_phase(self, phase: str, resolved: Resolved) -> None:
        with self._lock:
            if self._loading is not None:
                self._loading.update(phase=phase, version=resolved.version_label, md5=resolved.md5)

    def _swap(self, model: LoadedModel) -> bool:
        with self._lock:
            if self._stopping:  # closed while this load ran: nothing may serve it any more
                model.retire()
                return False
            old, self._current = self._current, model
            self.swaps += 1 if old is not None else 0
            self._last_error = None
        if self.on_swap is not None:
            self.on_swap(old, model)
        if old is not None:
            old.retire()  # closes now, or when its last pinned request is done
        return True

    def _fail(self, ref: str, exc: Exception, seconds: float) -> LoadEvent:
        message = exc.message if isinstance(exc, GitopsError) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            loading = self._loading or {}
            self._last_error = {"ref": ref, "version": loading.get("version"), "error": message,
                                "at": time.time()}
        event = LoadEvent("failed", ref, loading.get("version"), loading.get("md5"), round(seconds, 3), message)
        self.on_event(event)
        return event
