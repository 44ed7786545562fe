"""Batching concurrent requests into the engine, with a bounded queue and deadlines.

Each prompt becomes a :class:`Job` pinned to the model that was current when it was admitted. One
worker thread takes the oldest job plus every queued job that can share its engine call (same
model, same sampling settings), up to ``max_batch``, waiting at most ``max_wait_s`` for a batch
to fill, and runs one ``generate_tokens`` call for all of them. Tokens reach the event loop as
they are generated (streaming); rows end on their own (end token, ``max_tokens``, a stop string,
a deadline, a client gone). The queue is bounded: a full one refuses at once instead of letting
latency grow without limit. Closing drains: queued jobs still run, new ones are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from gitops.ml.backends import Sampling
from gitops.serve.engine import LoadedModel
from gitops.serve.textstream import TextStream


class QueueFull(Exception):
    """The queue has no room for a request's jobs."""


class Closed(Exception):
    """The scheduler is draining for shutdown and takes no new jobs."""


class Job:
    """One prompt of one request: its ids, limits and the channel back to the request handler.

    Events on ``events`` (an asyncio queue of the request's loop): ``("delta", index, text)`` while
    streaming, then ``("done", index, job)`` or ``("error", index, exception)``.
    """

    def __init__(self, model: LoadedModel, index: int, ids: list[int], max_tokens: int,
                 sampling: Sampling, stop: tuple[str, ...], deadline: float, *, stream: bool,
                 loop: asyncio.AbstractEventLoop, events: asyncio.Queue) -> None:
        self.model, self.index, self.ids = model, index, ids
        self.max_tokens, self.sampling, self.deadline = max_tokens, sampling, deadline
        self.stream, self._loop, self.events = stream, loop, events
        # Only streams and stop strings need the text token by token; the others are decoded once.
        self.incremental = stream or bool(stop)
        self.text = TextStream(model.backend.decode, stop) if self.incremental else None
        self.output = ""
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.cancelled = False  # set by the handler: timed out or client gone

    @property
    def key(self) -> tuple[int, Sampling]:
        """Jobs with equal keys can share one engine call."""
        return id(self.model), self.sampling

    def cancel(self) -> None:
        self.cancelled = True

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() > self.deadline

    def on_token(self, token: int) -> bool:
        """Worker thread: one generated token; True ends this row."""
        if self.expired():
            self.cancelled = True
            return True
        if self.text is None:
            return False
        delta = self.text.push(token)
        if delta and self.stream:
            self._post(("delta", self.index, delta))
        return self.text.stopped

    def finish(self, tokens: list[int]) -> None:
        """Worker thread: generation is over for this row; ``tokens`` are its new ids."""
        if self.cancelled:
            self.fail(TimeoutError("the request ran past its deadline"))
            return
        self.completion_tokens = len(tokens)
        stopped = False
        if self.text is None:
            self.output = self.model.backend.decode(tokens)
        else:
            delta = self.text.finish()
            if delta and self.stream:
                self._post(("delta", self.index, delta))
            self.output, stopped = self.text.text, self.text.stopped
        hit_length = self.completion_tokens >= self.max_tokens and not stopped
        self.finish_reason = "length" if hit_length else "stop"
        self._post(("done", self.index, self))

    def fail(self, exc: BaseException) -> None:
        self._post(("error", self.index, exc))

    def _post(self, event: tuple) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (server stopped): nobody is listening
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)


class Batcher:
    """The queue and the worker thread that feeds the engine."""

    def __init__(self, *, max_batch: int = 16, max_wait_s: float = 0.005, max_queue: int = 256,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_s not negative")
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.running = 0  # jobs inside the engine now
        self.admitted = 0  # jobs ever accepted
        self._thread = threading.Thread(target=self._loop, name="gitops-serve-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting for the engine."""
        with self._cond:
            return len(self._queue)

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue all of ``jobs`` or none: :class:`QueueFull` or :class:`Closed` otherwise."""
        jobs = list(jobs)
        with self._cond:
            if self._closing:
                raise Closed()
            if len(self._queue) + len(jobs) > self.max_queue:
                raise QueueFull()
            self._queue.extend(jobs)
            self.admitted += len(jobs)
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> bool:
        """Refuse new jobs, run the queued ones, stop the worker; False if it did not end in time."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None  # closing and drained
            end = time.monotonic() + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closing:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            key = self._queue[0].key
            batch: list[Any] = []
            rest: deque[Any] = deque()
            for job in self._queue:
                (batch if job.key == key and len(batch) < self.max_batch else rest).append(job)
            self._queue = rest
            self.running = len(batch)
            return batch

    def _run(self, batch: list[Job]) -> None:
        live = []
        for job in batch:
            if job.expired():  # its deadline passed in the queue, or its client left
                job.cancelled = True
                job.finish([])
            else:
                live.append(job)
        try:
            if live:
                if self.on_batch is not None:
                    self.on_batch(len(live))
                self._generate(live)
        finally:
            self.running = 0
            for job in batch:
                job.model.unpin()

    @staticmethod
    def _generate(jobs: list[Job]) -> None:
        backend = jobs[0].model.backend
        # The per-token hook costs a GIL round trip per token and row: only when a job streams or
        # has stop strings (deadlines are then checked per token too; otherwise before the call).
        watch = any(j.incremental for j in jobs)
        try:
            tokens = backend.generate_tokens(
                [j.ids for j in jobs], [j.max_tokens for j in jobs], sampling=jobs[0].sampling,
                on_token=(lambda row, token: jobs[row].on_token(token)) if watch else None)
        except Exception as exc:  # noqa: BLE001 - an engine failure fails this batch, not the server
            for job in jobs:
                job.fail(exc)
            return
        for job, new in zip(jobs, tokens):
            job.finish(new)
