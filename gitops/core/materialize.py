"""A registered version's files on disk: fetched through DVC, verified against the registry's md5.

Evaluation, conversion and continued training all start here, so a version whose files were
tampered with (or whose pointer disagrees with the registry) is refused before it is used.

:func:`loadable` is the entry point for whatever loads a version's weights (eval, convert, serve,
continued training): a ``peft-lora`` version pinned to a base version comes back as merged ``hf``
weights, made on demand and cached by (base md5, adapter md5) in :mod:`gitops.core.merged`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops.adapters.dvc import read_pointer
from gitops.core import merged, refs
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, IntegrityError, NotFoundError

MAX_ADAPTER_DEPTH = 8  # adapters trained on adapters: a bound on the chain merged on demand


def version_files(ws: Workspace, model: str, version: Version, *, verify: bool = True) -> Path:
    """The weights directory of ``model@version``, pulled from the DVC remote if absent."""
    rel_pointer = f"{version.path}.dvc"
    pointer = ws.root / rel_pointer
    if not pointer.exists():
        raise NotFoundError(f"{model}@{version.id}: {rel_pointer} is missing, so its weights are not tracked")
    recorded = read_pointer(pointer)["md5"]
    if recorded != version.md5:
        raise IntegrityError(f"{model}@{version.id}: {rel_pointer} records md5 {recorded}, but the registry "
                             f"records {version.md5}; refusing to use it")
    target = ws.root / version.path
    if not target.exists():
        ws.dvc.pull([rel_pointer])
    if verify and ws.dvc.changed([rel_pointer]):
        raise IntegrityError(f"{model}@{version.id}: the files in {version.path} do not match the md5 the "
                             f"registry records ({version.md5}); refusing to use them (restore them with "
                             f"'dvc checkout {rel_pointer}')")
    return target


@dataclass(frozen=True)
class Loadable:
    """A version ready to load: ``files`` are its own (verified) files (an adapter's metrics, curve
    and card are there), ``weights`` the directory to load and ``format`` the format of that
    directory (``hf`` for a merged ``peft-lora`` version), ``key`` what identifies those weights
    (the version md5, or the merge key)."""

    files: Path
    weights: Path
    format: str
    key: str


def is_pinned(version: Version) -> bool:
    """A ``peft-lora`` version that names its base version and that base's md5 (what gitops train
    registers); older adapters name a base by path or name and are loaded with it as they were."""
    return version.format == "peft-lora" and bool(version.base_md5) and "@" in (version.base_model or "")


def loadable(ws: Workspace, model: str, version: Version, *, _depth: int = 0) -> Loadable:
    """``model@version``'s weights as something to load: the version's verified files, or for a
    pinned ``peft-lora`` version its base (resolved the same way, verified against ``base_md5``)
    with the adapter merged in, from the merge cache."""
    files = version_files(ws, model, version)
    if not is_pinned(version):
        return Loadable(files, files, version.format, version.md5)
    label = f"{model}@{version.id}"
    if _depth >= MAX_ADAPTER_DEPTH:
        raise ConfigError(f"{label}: more than {MAX_ADAPTER_DEPTH} adapters stacked on each other; "
                          "register a merged version as a base")
    base_model, base = ws.registry().resolve(refs.parse_ref(version.base_model, require_ref=True))
    if base.md5 != version.base_md5:
        raise IntegrityError(f"{label} was trained on {version.base_model} with md5 {version.base_md5}, but the "
                             f"registry now records md5 {base.md5} for it; refusing to merge the adapter "
                             "into other weights")
    inner = loadable(ws, base_model.name, base, _depth=_depth + 1)
    if inner.format != "hf":
        raise ConfigError(f"{label}: its base {version.base_model} has format '{inner.format}'; a LoRA "
                          "adapter merges only into hf weights")
    key = merged.merge_key(inner.key, version.md5)
    return Loadable(files, merged.merged_dir(key, inner.weights, files), "hf", key)
