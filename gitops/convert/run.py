"""``gitops convert``: make a CTranslate2 variant of a registered version and register it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from gitops.adapters import git
from gitops.errors import ConvertError
from gitops.registry import materialize, store
from gitops.registry.schema import Version

# Written by `gitops train` next to the weights: the curve, final metrics, model card, config.
CARRIED_FILES = ("loss_curve.json", "metrics.json", "README.md", "train_config.yaml")


def convert_version(root: Path, ref: str, *, to: str = "ct2", quantization: str = "int8",
                    alias: str | None = None, push: bool = False) -> Version:
    """Convert ``MODEL@REF`` to ``to`` and register the result as a new version whose parent is the source."""
    from gitops import api
    from gitops.convert.ct2 import convert_to_ct2

    if to != "ct2":
        raise ConvertError(f"cannot convert to '{to}'; supported: ct2")
    git.require_clean(root, "register a converted version")
    model, src = store.load(root).resolve(ref)
    src_dir = materialize.version_files(root, model.name, src)
    base = materialize.base_model_dir(root, src.base_model) if src.format == "peft-lora" else None
    if base is not None and not isinstance(base, Path):
        raise ConvertError(f"{model.name}@{src.id}: its base model '{base}' is not available offline")
    with tempfile.TemporaryDirectory(prefix="gitops-convert-") as tmp:
        out = convert_to_ct2(src_dir, Path(tmp) / "ct2", quantization, fmt=src.format, base_dir=base)
        for name in CARRIED_FILES:  # the variant keeps its source's training record
            if (src_dir / name).is_file() and not (out / name).exists():
                shutil.copy2(src_dir / name, out / name)
        version = api.register(
            root, model.name, out, fmt="ct2", quantization=quantization, parent=src.id,
            base_model=src.base_model, dataset=src.dataset, config=src.config, config_hash=src.config_hash,
            metrics={"size_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())},
            note=f"CTranslate2 {quantization} conversion of {src.id}", push=False)
    if alias:
        api.set_alias(root, model.name, alias, version.id, note=f"{quantization} variant of {src.id}")
    if push:
        api._push(root, [f"{version.path}.dvc"], f"{model.name} {version.id} was registered")
    return version
