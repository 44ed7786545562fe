"""One loaded version: its backend, its identity, and the requests pinned to it.

A request pins the model that is current when it is admitted and unpins it when its generation is
over, so a swap never pulls a model from under a running batch: the retired model is closed by
whoever drops its last pin (or at once, when nothing holds it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gitops.serve.source import Resolved

if TYPE_CHECKING:
    from gitops.ml.backends import Backend
    from gitops.predict.prompter import Prompter

WARMUP_PROMPT = "Hello"
DEFAULT_CONTEXT = 2048  # the prompt + completion bound when the tokenizer states none


class LoadedModel:
    """A backend plus the version it runs and a pin count (thread-safe)."""

    def __init__(self, resolved: Resolved, backend: Backend, *, load_seconds: float = 0.0,
                 classifier: Any = None) -> None:
        self.resolved = resolved
        self.backend = backend
        self.classifier = classifier  # a head version's HeadClassifier over the backend (gitops.serve.headed)
        self.load_seconds = load_seconds
        self.context = backend.max_length or DEFAULT_CONTEXT
        self.render_lock = threading.Lock()  # a prompt version's retrieval, one request at a time
        self.score_lock = threading.Lock()   # a constrained prompt version's label scoring, likewise
        self._pins = 0
        self._retired = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.resolved.version_label

    @property
    def md5(self) -> str:
        return self.resolved.md5

    @property
    def prompt(self) -> Prompter | None:
        """A prompt version's renderer and retriever: a request's text is a row to render."""
        return self.resolved.prompt

    @property
    def pins(self) -> int:
        with self._lock:
            return self._pins

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def pin(self, n: int = 1) -> None:
        """Hold the model for ``n`` requests; the manager pins only its current model."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.label} is already closed")
            self._pins += n

    def unpin(self, n: int = 1) -> None:
        """Release ``n`` holds; the last one on a retired model closes it."""
        with self._lock:
            self._pins -= n
            close = self._retired and self._pins == 0 and not self._closed
            self._closed = self._closed or close
        if close:
            self.backend.close()

    def retire(self) -> None:
        """No new requests will pin this model; close it once the running ones are done."""
        with self._lock:
            self._retired = True
            close = self._pins == 0 and not self._closed
            self._closed = self._closed or close
        if close:
            self.backend.close()


Opener = Callable[[Resolved], LoadedModel]


def open_model(resolved: Resolved, *, threads: int | None = None, device: str = "cpu") -> LoadedModel:
    """Open ``resolved`` through the project's backends and warm it up with one short generation,
    so the first real request does not pay for lazy initialisation (and a model that loads but
    cannot generate fails here, before it is swapped in)."""
    from gitops.ml.backends import open_backend

    t0 = time.perf_counter()
    backend = open_backend(resolved.path, resolved.fmt, base_dir=resolved.base_dir, device=device,
                           threads=threads)
    classifier = None
    try:
        if resolved.head is not None:  # a head answers with one forward pass: warm that up instead
            from gitops.ml.classhead import classifier_for

            classifier = classifier_for(backend, resolved.head.head, resolved.head.spec)
            classifier.probabilities([classifier.encode(WARMUP_PROMPT)])
        else:
            backend.generate_tokens([backend.encode(WARMUP_PROMPT)], [2])
    except BaseException:
        backend.close()
        raise
    return LoadedModel(resolved, backend, load_seconds=time.perf_counter() - t0, classifier=classifier)
