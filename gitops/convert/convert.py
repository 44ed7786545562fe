"""``gitops convert``: make a CTranslate2 variant of a registered version and register it.

The variant carries none of its source's training record (curve, metrics, card): it gets its own
card saying it is a conversion and was not trained (:mod:`gitops.convert.variant_card`).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from gitops.convert import variant_card
from gitops.convert.ct2 import QUANTIZATIONS, SOURCE_FORMATS
from gitops.core import layout, refs
from gitops.core.materialize import loadable
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import ConvertError, shown
from gitops.ml.bases import base_model_dir
from gitops.registry.alias import set_alias
from gitops.registry.register import register


def convert(ws: Workspace, ref: str, *, to: str = "ct2", quantization: str = "int8",
            alias: str | None = None, push: bool = False) -> Version:
    """Convert ``MODEL@REF`` to ``to`` and register the result as a new version whose parent is the source."""
    from gitops.convert.ct2 import convert_to_ct2

    if to != "ct2":
        raise ConvertError(f"cannot convert to '{to}'; supported: ct2")
    if quantization not in QUANTIZATIONS:
        raise ConvertError(f"unsupported quantization '{shown(quantization)}'; choose one of: "
                           f"{', '.join(QUANTIZATIONS)}")
    if alias is not None and (problem := refs.alias_problem(alias)):  # refused now, not after converting
        raise ConvertError(f"--alias: {problem}")
    with ws.writing("convert"):  # settle a killed command first; the lock is not held while converting
        ws.git.require_clean("register a converted version")
    if push:
        ws.check_push()
    model, src = ws.registry().resolve(ref)
    if src.format not in SOURCE_FORMATS:  # before its weights are pulled
        already = " (it is a CTranslate2 version already: convert its parent)" if src.format == "ct2" else ""
        raise ConvertError(f"{model.name}@{src.id} has format '{src.format}', which cannot be converted to ct2; "
                           f"supported: {', '.join(SOURCE_FORMATS)}{already}")
    loaded = loadable(ws, model.name, src)  # a pinned peft-lora version: the merged weights (cached)
    base = base_model_dir(ws, src.base_model) if loaded.format == "peft-lora" else None
    if base is not None and not isinstance(base, Path):
        raise ConvertError(f"{model.name}@{src.id}: its base model '{base}' is not available offline")
    # under the git directory, not /tmp: a killed convert's leftovers are removed by the next one
    with ws.scratch("convert") as tmp:
        out = convert_to_ct2(loaded.weights, tmp / "ct2", quantization, fmt=loaded.format, base_dir=base)
        variant_card.write(out, model.name, src, quantization, _version("ctranslate2"))
        version = register(
            ws, model.name, out, fmt="ct2", quantization=quantization, parent=src.id,
            base_model=src.base_model, dataset=src.dataset, config=src.config, config_hash=src.config_hash,
            metrics={"size_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())},
            note=f"CTranslate2 {quantization} conversion of {src.id}", push=False).version
    if alias:
        set_alias(ws, model.name, alias, version.id, note=f"{quantization} variant of {src.id}")
    if push:
        ws.push([layout.pointer(version)], f"{model.name} {version.id} was registered")
    return version


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
