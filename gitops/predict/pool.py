"""The backends of one ``predict`` or ``compare`` command, each opened once.

A prompt version runs on its pinned base, so the zero-shot and few-shot variants of a comparison
usually share one set of weights: the pool opens each (model, version) it is asked for once, with
the command's device and thread count, and closes them all at the end. A prompt version's base is
checked against the md5 the prompt pinned every time it is asked for.
"""

from __future__ import annotations

from typing import Any

from gitops.core.materialize import has_adapter, loadable
from gitops.core.schema import Model, Version
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError
from gitops.predict.head_variant import head_base, is_head, open_classifier
from gitops.predict.prompter import pinned_base

RUNNABLE = ("hf", "peft-lora", "ct2")


class BackendPool:
    """Backends keyed by the (model, version) whose weights they hold."""

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        self.device, self.threads = device, threads
        self._open: dict[tuple[str, str], Any] = {}

    def get(self, ws: Workspace, model: Model, version: Version) -> Any:
        """The backend ``version`` runs on (a prompt version: its base; a head version: its classifier
        over its base), opened on first use."""
        if is_head(version):
            key = (model.name, version.id)
            if key not in self._open:
                base_model, base = head_base(ws.registry(), model, version)  # its pin, before anything loads
                # a frozen head shares its base's backend; a head trained with LoRA runs on the base
                # with its adapter merged in (materialize's merge cache), opened for it alone
                backend = self._backend(ws, model.name, version) if has_adapter(version) \
                    else self._backend(ws, base_model.name, base)
                self._open[key] = open_classifier(ws, model, version, backend)
            return self._open[key]
        name, target = runs_on(ws, model, version)
        return self._backend(ws, name, target)

    def _backend(self, ws: Workspace, name: str, target: Version) -> Any:
        key = (name, target.id)
        if key not in self._open:
            self._open[key] = _open(ws, name, target, self.device, self.threads)
        return self._open[key]

    def close(self) -> None:
        for backend in self._open.values():
            backend.close()
        self._open.clear()

    def __enter__(self) -> BackendPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def runs_on(ws: Workspace, model: Model, version: Version) -> tuple[str, Version]:
    """The (model name, version) whose weights run ``version``: itself, or a prompt's pinned base."""
    if version.format != "prompt":
        return model.name, version
    base_model, base = pinned_base(ws.registry(), model, version)
    return base_model.name, base


def _open(ws: Workspace, name: str, target: Version, device: str, threads: int | None) -> Any:
    from gitops.ml.backends import open_backend
    from gitops.ml.bases import base_model_dir

    if target.format not in RUNNABLE and not has_adapter(target):  # a LoRA head's weights: its merged base
        raise ConfigError(f"{name}@{target.id} has format '{target.format}', which gitops predict cannot run")
    loaded = loadable(ws, name, target)
    base_dir = base_model_dir(ws, target.base_model) if loaded.format == "peft-lora" else None
    return open_backend(loaded.weights, loaded.format, base_dir=base_dir, device=device, threads=threads)
