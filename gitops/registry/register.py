"""``gitops register``: a weights directory becomes the model's next version.

The directory is copied under ``models/MODEL/vN``, tracked by its own ``.dvc`` pointer, recorded in
``model.yaml`` with its lineage (appended, one cache line) and committed; on any failure the
repository is left exactly as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gitops import timestamps, yamlio
from gitops.core import layout, refs, schema
from gitops.core.reader import Registry
from gitops.core.schema import Model, Version
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError, RegistryError


def register(ws: Workspace, model: str, path: Path, *, fmt: str = "hf", parent: str | None = None,
             base_model: str | None = None, dataset: str | None = None,
             metrics: dict[str, float] | Path | None = None, config: dict | None = None,
             config_hash: str | None = None, quantization: str | None = None, note: str | None = None,
             move: bool = False, push: bool = False, base_md5: str | None = None) -> Version:
    """Store a weights directory as the model's next version: copy under ``models/MODEL/vN``,
    ``dvc add`` it (one ``.dvc`` per version), record its lineage, commit (and ``push``).
    ``base_md5`` pins a ``peft-lora`` adapter to the exact base version it was trained on."""
    if fmt not in schema.FORMATS:
        raise RegistryError(f"format '{fmt}' is not one of {', '.join(schema.FORMATS)}")
    if quantization is not None and quantization not in schema.QUANTIZATIONS:
        raise RegistryError(f"quantization '{quantization}' is not one of {', '.join(schema.QUANTIZATIONS)}")
    src = _check_weights_dir(Path(path))
    ws.git.require_clean("register a version")
    if push:
        ws.check_push()
    reg = ws.registry()
    m = reg.model(model)
    _check_lineage(reg, m, parent, dataset)
    if isinstance(metrics, Path):
        metrics = read_metrics(metrics)
    vid = m.next_version_id()
    rel = layout.version_dir(model, vid)
    dest = ws.root / rel
    if src == dest or dest in src.parents or src in dest.parents:
        raise RegistryError(f"{path} overlaps {rel}; register a directory outside models/{model}/")
    _clear_leftovers(ws, rel)
    model_rel = layout.model_file(model)
    paths = [model_rel, f"{rel}.dvc", f"models/{model}/.gitignore"]
    with ws.transaction(paths, [dest, ws.root / f"{rel}.dvc"]):
        _copy_weights(src, dest)
        version = Version(id=vid, format=fmt, path=rel, md5=ws.dvc.add(rel), parent=parent, base_model=base_model,
                          dataset=dataset, quantization=quantization, config=config, config_hash=config_hash,
                          metrics=dict(metrics or {}), note=note, commit=ws.git.head(), author=ws.git.user(),
                          created_at=timestamps.utc_now(), base_md5=base_md5)
        grown = Model(**{**vars(m), "versions": {**m.versions, vid: version}})
        layout.append_version(ws.root, ws.cache, model_rel, version, schema.version_fields(version),
                              lambda: layout.write_model(ws.root, grown))
        ws.commit(paths, f"register {model} {vid} ({fmt})")
    if move:
        shutil.rmtree(src, ignore_errors=True)
    if push:
        ws.push([f"{rel}.dvc"], f"{model} {vid} was registered")
    return version


def read_metrics(path: Path) -> dict[str, float]:
    """A metrics file (JSON, or YAML) of ``name: number``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"metrics file {path} does not exist") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yamlio.loads(text, str(path))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: metrics must be a mapping of names to numbers")
    bad = [k for k, v in data.items() if not schema.is_number(v)]
    if bad:
        raise RegistryError(f"{path}: metric '{bad[0]}' is not a number")
    return {str(k): v for k, v in data.items()}


def _check_weights_dir(path: Path) -> Path:
    if not path.exists():
        raise NotFoundError(f"weights directory {path} does not exist")
    if not path.is_dir():
        raise RegistryError(f"{path} is not a directory (register a directory of weights files)")
    if not any(p.is_file() for p in path.rglob("*")):
        raise RegistryError(f"weights directory {path} is empty")
    return path.resolve()


def _check_lineage(reg: Registry, model: Model, parent: str | None, dataset: str | None) -> None:
    if parent is not None and parent not in model.versions:
        raise NotFoundError(f"parent {parent} is not a version of '{model.name}'")
    if dataset is not None:
        ref = refs.parse_ref(dataset, "data set", require_ref=True)
        if not ref.is_version:
            raise RegistryError(f"data set reference '{dataset}' must name a version, like {ref.name}@v1")
        if reg.datasets and ref.ref not in reg.dataset(ref.name).versions:
            raise NotFoundError(f"data set '{ref.name}' has no version {ref.ref}")


def _copy_weights(src: Path, dest: Path) -> None:
    try:
        shutil.copytree(src, dest)
    except shutil.Error as exc:
        first = exc.args[0][0] if exc.args and exc.args[0] else ("?", "?", str(exc))
        raise RegistryError(f"could not copy the weights: {first[0]}: {first[2]}") from None
    except OSError as exc:
        raise RegistryError(f"could not copy the weights from {src}: {exc.strerror or exc}") from None


def _clear_leftovers(ws: Workspace, rel: str) -> None:
    """An interrupted register may leave an untracked ``models/M/vN`` behind: it is garbage."""
    if ws.git.ls_files([rel, f"{rel}.dvc"]):
        raise RegistryError(f"{rel} is already tracked in git, but the registry does not list it")
    shutil.rmtree(ws.root / rel, ignore_errors=True)
    (ws.root / f"{rel}.dvc").unlink(missing_ok=True)
