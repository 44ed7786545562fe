"""A registered version's files on disk: fetched through DVC, verified against the registry's md5.

Evaluation, conversion and continued training all start here, so a version whose files were
tampered with (or whose pointer disagrees with the registry) is refused before it is used.
"""

from __future__ import annotations

from pathlib import Path

from gitops.adapters import dvc
from gitops.errors import IntegrityError, NotFoundError
from gitops.registry import refs, store
from gitops.registry.schema import Version

EMBEDDED_BASE = "gitops/tiny-opt"  # how versions record the embedded default base model


def version_files(root: Path, model: str, version: Version, *, verify: bool = True) -> Path:
    """The weights directory of ``model@version``, pulled from the DVC remote if absent."""
    rel_pointer = f"{version.path}.dvc"
    pointer = root / rel_pointer
    if not pointer.exists():
        raise NotFoundError(f"{model}@{version.id}: {rel_pointer} is missing, so its weights are not tracked")
    recorded = dvc.read_pointer(pointer)["md5"]
    if recorded != version.md5:
        raise IntegrityError(f"{model}@{version.id}: {rel_pointer} records md5 {recorded}, but the registry "
                             f"records {version.md5}; refusing to use it")
    target = root / version.path
    if not target.exists():
        dvc.pull(root, [rel_pointer])
    if verify and dvc.changed(root, [rel_pointer]):
        raise IntegrityError(f"{model}@{version.id}: the files in {version.path} do not match the md5 the "
                             f"registry records ({version.md5}); refusing to use them (restore them with "
                             f"'dvc checkout {rel_pointer}')")
    return target


def base_model_dir(root: Path, base_model: str | None) -> Path | str | None:
    """Where a version's base model lives: a registry ref, the embedded default, a path or a hub id."""
    if not base_model:
        return None
    if base_model == EMBEDDED_BASE:
        from gitops.ml.basemodel import default_base_model

        return default_base_model()
    if "@" in base_model:
        ref = refs.parse_ref(base_model, require_ref=True)
        model, version = store.load(root).resolve(ref)
        if version.format == "peft-lora":
            raise NotFoundError(f"base model {base_model} is itself an adapter; register merged weights as base")
        return version_files(root, model.name, version)
    path = Path(base_model)
    if not path.is_absolute():
        path = root / path
    return path if path.exists() else base_model  # a hub id, loaded by from_pretrained when online
