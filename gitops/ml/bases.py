"""Where a version's base model lives: a registry version, the embedded default, a path or a hub id.

A ``peft-lora`` version records the base it adapts; training, conversion and evaluation ask this
module for a loadable directory. A registry reference is fetched and md5-checked through
:func:`gitops.core.materialize.version_files`; the embedded default is built (once, cached) by
:mod:`gitops.ml.basemodel`.
"""

from __future__ import annotations

from pathlib import Path

from gitops.core import refs
from gitops.core.materialize import is_pinned, loadable, version_files
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError

EMBEDDED_BASE = "gitops/tiny-opt"  # how versions record the embedded default base model


def base_model_dir(ws: Workspace, base_model: str | None) -> Path | str | None:
    """A directory for ``base_model``; a hub id comes back as the string (``from_pretrained`` loads it
    when online); None when there is no base."""
    if not base_model:
        return None
    if base_model == EMBEDDED_BASE:
        from gitops.ml.basemodel import default_base_model

        return default_base_model()
    if "@" in base_model:
        ref = refs.parse_ref(base_model, require_ref=True)
        model, version = ws.registry().resolve(ref)
        if is_pinned(version):  # merged into its own base on demand (cached)
            return loadable(ws, model.name, version).weights
        if version.format == "peft-lora":
            raise NotFoundError(f"base model {base_model} is itself an adapter; register merged weights as base")
        return version_files(ws, model.name, version)
    path = Path(base_model)
    if not path.is_absolute():
        path = ws.root / path
    return path if path.exists() else base_model
