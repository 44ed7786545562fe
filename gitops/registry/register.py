"""``gitops register``: a weights directory becomes the model's next version.

The directory is copied under ``models/MODEL/vN``, tracked by its own ``.dvc`` pointer, recorded in
``model.yaml`` with its lineage (appended, one cache line) and committed, all inside the write-ahead
journal (:mod:`gitops.core.journal`): on any failure, and after a SIGKILL at any moment once the
next command has run, the repository is exactly as before or exactly as after.

Registering is idempotent: weights whose DVC md5 *and* lineage (format, parent, base model, data
set, quantization, config hash) equal an existing version's are that version. Nothing is
committed and that version is returned, so re-running a register that was killed after its
commit (or simply twice) never makes a duplicate.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops import jsonio, timestamps, yamlio
from gitops.core import layout, plain, refs, schema
from gitops.core.reader import Registry
from gitops.core.schema import Model, Version
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError, RegistryError, shown

MAX_METRICS_BYTES = 1024 * 1024  # a metrics file is a handful of numbers


@dataclass
class RegisterResult:
    """What a register did. ``created`` is False when the weights and lineage already were
    ``version`` (nothing committed); ``recovered`` says how an interrupted command was settled first."""

    version: Version
    created: bool = True
    recovered: str | None = None


class _AlreadyRegistered(Exception):
    """Raised inside the transaction (which rolls the copy back) when the weights are a known version."""

    def __init__(self, version: Version) -> None:
        super().__init__(version.id)
        self.version = version


def register(ws: Workspace, model: str, path: Path, *, fmt: str = "hf", parent: str | None = None,
             base_model: str | None = None, dataset: str | None = None,
             metrics: Mapping[str, float | None] | Path | None = None, config: dict | None = None,
             config_hash: str | None = None, quantization: str | None = None, note: str | None = None,
             move: bool = False, push: bool = False, base_md5: str | None = None) -> RegisterResult:
    """Store a weights directory as the model's next version: copy under ``models/MODEL/vN``,
    ``dvc add`` it (one ``.dvc`` per version), record its lineage, commit (and ``push``). The same
    weights with the same lineage as an existing version return that version (see the module doc).
    ``base_md5`` pins a ``peft-lora`` adapter to the exact base version it was trained on."""
    if fmt not in schema.FORMATS:
        raise RegistryError(f"format '{fmt}' is not one of {', '.join(schema.FORMATS)}")
    if problem := schema.note_problem(note):
        raise RegistryError(problem)
    if fmt == "prompt":  # a prompt version is a config in git, not a weights directory in DVC
        raise RegistryError(f"a prompt version holds no weights: add it with 'gitops prompt add {shown(model)} "
                            "--config prompt.yaml'")
    if quantization is not None and quantization not in schema.QUANTIZATIONS:
        raise RegistryError(f"quantization '{quantization}' is not one of {', '.join(schema.QUANTIZATIONS)}")
    src = _check_weights_dir(Path(path))
    if isinstance(metrics, Path):
        metrics = read_metrics(metrics)
    draft = Version(id="", format=fmt, path="", md5="", parent=parent, base_model=base_model, dataset=dataset,
                    quantization=quantization, config=config, config_hash=config_hash,
                    metrics=dict(metrics or {}), note=note, base_md5=base_md5)
    with ws.writing("register") as recovered:
        ws.git.require_clean("register a version")
        if push:
            ws.check_push()
        result = _store(ws, model, src, draft)
        result.recovered = recovered
    if move:
        _discard(src)
    if push:  # also when the version existed: the killed run may have committed without pushing
        ws.push([layout.pointer(result.version)], f"{model} {result.version.id} was registered")
    return result


def _store(ws: Workspace, model: str, src: Path, draft: Version) -> RegisterResult:
    """Copy, add, record and commit ``src`` as the next version (or find it is one already)."""
    reg = ws.registry()
    m = reg.model(model)
    _check_lineage(reg, m, draft.parent, draft.dataset)
    draft = dataclasses.replace(draft, task_md5=m.task_md5())  # the classification block it is added with
    vid = m.next_version_id()
    rel = layout.version_dir(model, vid)
    dest = ws.root / rel
    if src == dest or dest in src.parents or src in dest.parents:
        raise RegistryError(f"{src} overlaps {rel}; register a directory outside models/{model}/")
    _clear_leftovers(ws, rel)
    model_rel = layout.model_file(model)
    paths = [model_rel, layout.pointer(rel), f"models/{model}/.gitignore"]
    try:
        with ws.transaction(paths, [dest], f"register {model} {vid}"):
            _copy_weights(src, dest)
            md5 = ws.dvc.add(rel)
            if known := same_weights(m, draft, md5):
                raise _AlreadyRegistered(known)  # the transaction takes the copy back out
            version = dataclasses.replace(draft, id=vid, path=rel, md5=md5, commit=ws.git.head(),
                                          author=ws.git.user(), created_at=timestamps.utc_now())
            grown = Model(**{**vars(m), "versions": {**m.versions, vid: version}})
            layout.append_version(ws.root, ws.cache, model_rel, version, plain.version_fields(version),
                                  lambda: layout.write_model(ws.root, grown))
            ws.commit(paths, f"register {model} {vid} ({draft.format})")
    except _AlreadyRegistered as found:
        return RegisterResult(found.version, created=False)
    return RegisterResult(version)


def lineage(version: Version) -> tuple[str | None, ...]:
    """What, besides the weights, makes a version what it is: two versions alike in this and in md5 are one."""
    return (version.format, version.parent, version.base_model, version.dataset, version.quantization,
            version.config_hash, version.base_md5, version.task_md5)


def same_weights(model: Model, draft: Version, md5: str) -> Version | None:
    """The version of ``model`` that already holds weights ``md5`` with ``draft``'s lineage, if any."""
    return next((v for v in model.versions.values() if v.md5 == md5 and lineage(v) == lineage(draft)), None)


def read_metrics(path: Path) -> dict[str, float]:
    """A metrics file (JSON, or YAML) of ``name: number``, at most :data:`MAX_METRICS_BYTES`."""
    if not path.exists():
        raise NotFoundError(f"metrics file {path} does not exist")
    try:
        if path.suffix == ".json":
            data = jsonio.load_file(path, MAX_METRICS_BYTES)
        else:
            data = yamlio.load_file(path, max_bytes=MAX_METRICS_BYTES)
    except (jsonio.JsonError, jsonio.TooLarge, yamlio.YamlError) as exc:
        raise RegistryError(str(exc)) from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: metrics must be a mapping of names to numbers")
    bad = [k for k, v in data.items() if not schema.is_number(v)]
    if bad:
        raise RegistryError(f"{path}: metric '{shown(bad[0])}' is not a number")
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


def _discard(src: Path) -> None:
    """``--move``: the weights are registered, so their source goes. Renamed aside first, then
    deleted: a kill midway must not leave half of them under their name for a re-run to register."""
    aside = src.with_name(f".{src.name}.gitops-registered")
    shutil.rmtree(aside, ignore_errors=True)
    try:
        src.rename(aside)
    except OSError:
        aside = src
    shutil.rmtree(aside, ignore_errors=True)


def _clear_leftovers(ws: Workspace, rel: str) -> None:
    """An interrupted register may leave an untracked ``models/M/vN`` behind: it is garbage."""
    if ws.git.ls_files([rel, layout.pointer(rel)]):
        raise RegistryError(f"{rel} is already tracked in git, but the registry does not list it")
    shutil.rmtree(ws.root / rel, ignore_errors=True)
    (ws.root / layout.pointer(rel)).unlink(missing_ok=True)
