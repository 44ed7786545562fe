"""A receiver's durable record of deliveries, so each one is acted on once, across restarts.

``gitops deploy`` gives every delivery a stable id (the same for every retry and every re-run of
the workflow) and counts only a 2xx as delivered. The receiver's half of that contract is this
store: a delivery it completed is answered "already deployed" (2xx) without acting again, one it
is working on is answered 409 with ``Retry-After`` (the sender asks again later), and one whose
action failed is forgotten, so the sender's retry runs it again. The record is a small SQLite file
that survives restarts; a process that dies mid-action leaves a ``running`` row, which the next
process to open the store clears (the action may then run again: make it safe to repeat).

One process owns a store at a time (an exclusive lock on ``<path>.lock``, released by the kernel
when the process dies); a second one is refused instead of silently breaking the record.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.errors import DeployError

NEW, RUNNING, DONE = "new", "running", "done"
KEEP = 10_000  # completed deliveries remembered (the newest); older ones are pruned
MAX_ID_CHARS = 200  # a delivery id is a header value: short printable ASCII (signing.py checks it)
MAX_RECORD_BYTES = 16 * 1024
RETRY_AFTER_S = 2

_SCHEMA = """CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, record TEXT NOT NULL, updated REAL NOT NULL)"""


@dataclass(frozen=True)
class Claim:
    """What :meth:`DeliveryStore.begin` found: ``new`` (now claimed by the caller, who must
    :meth:`~DeliveryStore.finish` or :meth:`~DeliveryStore.release` it), ``running`` (claimed
    before, not finished) or ``done`` (``record`` is what :meth:`~DeliveryStore.finish` stored)."""

    delivery: str
    state: str
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """The HTTP answer for one attempt of a delivery (what :meth:`DeliveryStore.deliver` decided)."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class DeliveryStore:
    """Delivery ids a receiver claimed or completed, in a SQLite file (thread-safe, one process)."""

    def __init__(self, path: Path | str, *, keep: int = KEEP) -> None:
        self.path = Path(path)
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_exclusively(self.path.with_name(self.path.name + ".lock"))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            # Rows left running belong to a process that died (we hold the lock): their action did
            # not finish, so the sender's next attempt must be let in.
            self._db.execute("DELETE FROM deliveries WHERE state = ?", (RUNNING,))
        except sqlite3.Error as exc:
            self._lock_file.close()
            raise DeployError(f"{self.path}: cannot open the delivery store ({exc})") from None

    def begin(self, delivery: str) -> Claim:
        """Claim ``delivery`` unless it is already claimed or completed."""
        _check_id(delivery)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT state, record FROM deliveries WHERE id = ?", (delivery,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO deliveries VALUES (?, ?, '{}', ?)", (delivery, RUNNING, time.time()))
                return Claim(delivery, NEW)
        state, record = row
        return Claim(delivery, state, json.loads(record) if state == DONE else {})

    def finish(self, delivery: str, record: dict[str, Any] | None = None) -> None:
        """Mark ``delivery`` completed; ``record`` (small JSON) is what later attempts are told."""
        _check_id(delivery)
        text = json.dumps(record or {}, separators=(",", ":"), default=str)
        if len(text.encode()) > MAX_RECORD_BYTES:
            raise DeployError(f"the record of delivery {delivery} is over {MAX_RECORD_BYTES} bytes")
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                             (delivery, DONE, text, time.time()))
            self._db.execute("DELETE FROM deliveries WHERE state = ? AND id NOT IN (SELECT id FROM deliveries "
                             "WHERE state = ? ORDER BY updated DESC LIMIT ?)", (DONE, DONE, self.keep))

    def release(self, delivery: str) -> None:
        """Forget a claimed delivery whose action failed, so the sender's retry runs it again."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM deliveries WHERE id = ? AND state = ?", (delivery, RUNNING))

    def state(self, delivery: str) -> str:
        """``new`` (unknown), ``running`` or ``done``."""
        with self._lock:
            row = self._db.execute("SELECT state FROM deliveries WHERE id = ?", (delivery,)).fetchone()
        return row[0] if row else NEW

    def deliver(self, delivery: str, action: Callable[[], dict[str, Any] | None]) -> Answer:
        """Run ``action`` once for ``delivery`` and say what to answer: 200 ``deployed`` (``action``
        ran now) or ``already deployed``, 409 ``in progress`` with ``Retry-After``, or 500 when the
        action raised (the claim is released, so the sender's retry runs it again)."""
        claim = self.begin(delivery)
        if claim.state == DONE:
            return Answer(200, "already deployed")
        if claim.state == RUNNING:
            return Answer(409, "in progress; retry later", {"Retry-After": str(RETRY_AFTER_S)})
        try:
            record = action()
        except Exception as exc:  # noqa: BLE001 - any failure must let the retry in
            self.release(delivery)
            return Answer(500, f"deploy failed ({type(exc).__name__}); retry later")
        self.finish(delivery, record)
        return Answer(200, "deployed")

    def close(self) -> None:
        """Close the file and drop the lock (another process may open the store then)."""
        with self._lock:
            self._db.close()
            self._lock_file.close()

    def __enter__(self) -> DeliveryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_id(delivery: str) -> None:
    if not (isinstance(delivery, str) and 0 < len(delivery) <= MAX_ID_CHARS and delivery.isascii()
            and delivery.isprintable()):
        raise DeployError("a delivery id is short printable ASCII (the X-Gitops-Delivery header)")


def _lock_exclusively(path: Path):  # untyped: an open file holding the lock
    """Hold an exclusive lock on ``path`` for the life of the returned file, or refuse at once."""
    fh = open(path, "a+b")  # noqa: SIM115 - kept open: closing it releases the lock
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process guard
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise DeployError(f"{path.with_suffix('')}: another process already receives deliveries with this "
                          "store (one receiver per store; give each its own state directory)") from None
    os.set_inheritable(fh.fileno(), False)
    return fh
