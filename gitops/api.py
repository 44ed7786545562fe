"""One function per verb. Returns data, never prints: the CLI (``gitops.cli``) does the talking.

Every function takes the repository root; :func:`repo_root` finds it from the current directory.
Commands that commit refuse a dirty work tree and leave the repository exactly as it was on error.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops import yamlio
from gitops.adapters import dvc, git
from gitops.errors import GitopsError, NotFoundError, RegistryError
from gitops.registry import codeowners as _codeowners
from gitops.registry import refs, schema, store
from gitops.registry.schema import Alias, Model, Version

if TYPE_CHECKING:
    from gitops.registry.diff import RegistryDiff
    from gitops.registry.history import AliasEvent
    from gitops.scaffold import InitResult

# The verbs of the other areas, re-exported lazily (PEP 562) so `import gitops.api` stays light:
# each name resolves to the area's own typed function on first use.
_AREA_VERBS = {
    "create_dataset": ("gitops.data.api", "create_dataset"),
    "show_dataset": ("gitops.data.api", "show_dataset"),
    "ingest": ("gitops.data.api", "ingest"),
    "read_rows": ("gitops.data.reader", "read_rows"),
    "train": ("gitops.train.pipeline", "run_train"),
    "convert": ("gitops.convert.run", "convert_version"),
    "plan_eval": ("gitops.eval.run", "plan_eval"),
    "evaluate": ("gitops.eval.run", "evaluate"),
    "report": ("gitops.report.render", "report_from_files"),
    "post_report": ("gitops.github.comments", "post_report"),
    "promote": ("gitops.github.promote", "promote"),
    "open_pull_request": ("gitops.github.promote", "open_pull_request"),
    "approvals": ("gitops.github.approvals", "approvals"),
    "deploy": ("gitops.deploy", "deploy"),
    "notify": ("gitops.deploy", "notify"),
    "demo": ("gitops.demo.loop", "run_demo"),
}

__all__ = ["repo_root", "init", "show", "create_model", "register", "set_alias", "unset_alias", "check",
           "diff", "history", "codeowners", *_AREA_VERBS]


def __getattr__(name: str) -> Any:
    if name not in _AREA_VERBS:
        raise AttributeError(f"module 'gitops.api' has no attribute '{name}'")
    import importlib

    module, attr = _AREA_VERBS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def repo_root(start: Path | str = ".") -> Path:
    return git.find_root(start)


def init(directory: Path, remote: str | None = None, repo: str | None = None) -> InitResult:
    from gitops.scaffold import init as _init

    return _init(directory, remote=remote, repo=repo)


# --- reading -------------------------------------------------------------------------------------

def show(root: Path, target: str | None = None) -> dict[str, Any]:
    """The registry (no target), one model (``MODEL``) or one version (``MODEL@REF``) as plain data."""
    reg = store.load(root)
    if target is None:
        return {"models": [_model_summary(m) for _, m in sorted(reg.models.items())],
                "datasets": [_dataset_summary(d) for _, d in sorted(reg.datasets.items())]}
    ref = refs.parse_ref(target)
    if ref.ref is None:
        model = reg.model(ref.name)
        return {**_model_summary(model),
                "versions": [_version_row(model, v) for v in
                             sorted(model.versions.values(), key=lambda v: refs.version_number(v.id))]}
    model, version = reg.resolve(ref)
    return {"model": model.name, "id": version.id, **version.to_dict(),
            "aliases": sorted(a for a, al in model.aliases.items() if al.version == version.id)}


def _model_summary(model: Model) -> dict[str, Any]:
    latest = model.latest()
    return {"name": model.name, "description": model.description, "task": model.task,
            "owners": model.owners, "versions_count": len(model.versions),
            "latest": latest.id if latest else None,
            "aliases": {a: al.version for a, al in sorted(model.aliases.items())},
            "protected": {a: o for a, o in sorted(model.protected.items())}}


def _version_row(model: Model, v: Version) -> dict[str, Any]:
    return {"id": v.id, "format": v.format, "quantization": v.quantization, "parent": v.parent,
            "dataset": v.dataset, "created_at": v.created_at, "author": v.author, "metrics": v.metrics,
            "aliases": sorted(a for a, al in model.aliases.items() if al.version == v.id)}


def _dataset_summary(ds: schema.Dataset) -> dict[str, Any]:
    latest = ds.latest()
    return {"name": ds.name, "versions_count": len(ds.versions), "latest": latest.id if latest else None,
            "rows": sum(v.rows for v in ds.versions.values())}


def check(root: Path, base: str | None = None, remote: bool = False) -> list[str]:
    """Every problem in the registry (empty: all good)."""
    from gitops.registry.check import check as _check

    return _check(root, base=base, remote=remote)


def diff(root: Path, base: str, head: str) -> RegistryDiff:
    from gitops.registry.diff import diff_refs

    return diff_refs(root, base, head)


def history(root: Path, model: str, alias: str | None = None, limit: int | None = None) -> list[AliasEvent]:
    from gitops.registry.history import history as _history

    reg = store.load(root)
    m = reg.model(model)
    if alias is not None and (problem := refs.alias_problem(alias)):
        raise RegistryError(problem)
    if alias is not None and alias not in m.aliases and not (root / store.alias_file(model, alias)).exists():
        events = _history(root, model, alias, limit)
        if not events:
            raise NotFoundError(f"model '{model}' has no alias '{alias}' and never had one")
        return events
    return _history(root, model, alias, limit)


@dataclass
class CodeownersResult:
    path: str
    text: str
    in_sync: bool
    written: bool


def codeowners(root: Path, write: bool = False) -> CodeownersResult:
    from gitops import config

    reg = store.load(root)
    cfg = config.load_config(root)
    text = _codeowners.render(reg, cfg.admins)
    in_sync = _codeowners.current(root) == text
    if write and not in_sync:
        yamlio.write_atomic(root / _codeowners.CODEOWNERS, text)
    return CodeownersResult(_codeowners.CODEOWNERS, text, in_sync, write and not in_sync)


# --- writing -------------------------------------------------------------------------------------

@contextlib.contextmanager
def _transaction(root: Path, tracked: list[str], created: list[Path]) -> Iterator[None]:
    """On any failure put ``tracked`` paths back as HEAD has them and delete ``created`` paths."""
    try:
        yield
    except BaseException:
        for path in created:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        git.restore(root, tracked)
        raise


def _commit_registry_change(root: Path, paths: list[str], message: str) -> str:
    git.add(root, paths)
    return git.commit(root, message, paths=paths)


def create_model(root: Path, name: str, *, description: str = "", task: str = "text-generation",
                 owners: list[str] | None = None, protect: dict[str, list[str]] | None = None,
                 gates: list[dict[str, Any]] | None = None) -> Model:
    """Add ``registry/NAME/model.yaml`` (and keep CODEOWNERS in sync with its protected aliases)."""
    from gitops import config

    if problem := refs.name_problem(name):
        raise RegistryError(problem)
    git.require_clean(root, "create a model")
    reg = store.load(root)
    if name in reg.models or (root / store.model_file(name)).exists():
        raise RegistryError(f"model '{name}' already exists ({store.model_file(name)})")
    header = {"name": name, "description": description, "task": task, "owners": owners or []}
    if protect:
        header["protected"] = protect
    if gates:
        header["gates"] = gates
    text = yamlio.dumps(header) + "versions:\n"
    problems = schema.Problems()
    model = schema.parse_model(yamlio.loads(text, store.model_file(name)), store.model_file(name), name, problems)
    if model is None:
        raise RegistryError(problems[0].split(": ", 1)[1] if len(problems) == 1 else "invalid model",
                            problems=problems if len(problems) > 1 else None)
    rel = store.model_file(name)
    paths = [rel, _codeowners.CODEOWNERS]
    with _transaction(root, paths, [root / store.REGISTRY / name]):
        yamlio.write_atomic(root / rel, text)
        reg.models[name] = model
        cfg = config.load_config(root)
        yamlio.write_atomic(root / _codeowners.CODEOWNERS, _codeowners.render(reg, cfg.admins))
        _commit_registry_change(root, paths, f"model {name}: create")
    return model


def _read_metrics(path: Path) -> dict[str, float]:
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
    bad = [k for k, v in data.items() if not schema._number(v)]
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


def _check_lineage(reg: store.Registry, model: Model, parent: str | None, dataset: str | None) -> None:
    if parent is not None and parent not in model.versions:
        raise NotFoundError(f"parent {parent} is not a version of '{model.name}'")
    if dataset is not None:
        ref = refs.parse_ref(dataset, "data set", require_ref=True)
        if not ref.is_version:
            raise RegistryError(f"data set reference '{dataset}' must name a version, like {ref.name}@v1")
        if reg.datasets and ref.ref not in reg.dataset(ref.name).versions:
            raise NotFoundError(f"data set '{ref.name}' has no version {ref.ref}")


def register(root: Path, model: str, path: Path, *, fmt: str = "hf", parent: str | None = None,
             base_model: str | None = None, dataset: str | None = None,
             metrics: dict[str, float] | Path | None = None, config: dict | None = None,
             config_hash: str | None = None, quantization: str | None = None, note: str | None = None,
             move: bool = False, push: bool = False) -> Version:
    """Store a weights directory as the model's next version: copy under ``models/MODEL/vN``,
    ``dvc add`` it (one ``.dvc`` per version), record its lineage, commit."""
    if fmt not in schema.FORMATS:
        raise RegistryError(f"format '{fmt}' is not one of {', '.join(schema.FORMATS)}")
    if quantization is not None and quantization not in schema.QUANTIZATIONS:
        raise RegistryError(f"quantization '{quantization}' is not one of {', '.join(schema.QUANTIZATIONS)}")
    src = _check_weights_dir(Path(path))
    git.require_clean(root, "register a version")
    reg = store.load(root)
    m = reg.model(model)
    _check_lineage(reg, m, parent, dataset)
    if isinstance(metrics, Path):
        metrics = _read_metrics(metrics)
    vid = m.next_version_id()
    rel = store.version_dir(model, vid)
    dest = root / rel
    if src == dest or dest in src.parents or src in dest.parents:
        raise RegistryError(f"{path} overlaps {rel}; register a directory outside models/{model}/")
    _clear_leftovers(root, rel)
    version = Version(id=vid, format=fmt, path=rel, md5="", parent=parent, base_model=base_model,
                      dataset=dataset, quantization=quantization, config=config, config_hash=config_hash,
                      metrics=dict(metrics or {}), note=note, commit=git.head(root), author=git.user(root),
                      created_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    paths = [store.model_file(model), f"{rel}.dvc", f"models/{model}/.gitignore"]
    with _transaction(root, paths, [dest, root / f"{rel}.dvc"]):
        _copy_weights(src, dest)
        version.md5 = dvc.add(root, rel)
        m.versions[vid] = version
        store.write_model(root, m, new_version=version)
        _commit_registry_change(root, paths, f"register {model} {vid} ({fmt})")
    if move:
        shutil.rmtree(src, ignore_errors=True)
    if push:
        _push(root, [f"{rel}.dvc"], f"{model} {vid} was registered")
    return version


def _copy_weights(src: Path, dest: Path) -> None:
    try:
        shutil.copytree(src, dest)
    except shutil.Error as exc:
        first = exc.args[0][0] if exc.args and exc.args[0] else ("?", "?", str(exc))
        raise RegistryError(f"could not copy the weights: {first[0]}: {first[2]}") from None
    except OSError as exc:
        raise RegistryError(f"could not copy the weights from {src}: {exc.strerror or exc}") from None


def _clear_leftovers(root: Path, rel: str) -> None:
    """An interrupted register may leave an untracked ``models/M/vN`` behind: it is garbage."""
    tracked = git.run(root, "ls-files", "--", rel, f"{rel}.dvc").strip()
    if tracked:
        raise RegistryError(f"{rel} is already tracked in git, but the registry does not list it")
    shutil.rmtree(root / rel, ignore_errors=True)
    (root / f"{rel}.dvc").unlink(missing_ok=True)


def _push(root: Path, dvc_targets: list[str], what: str) -> None:
    try:
        dvc.push(root, dvc_targets)
        git.push(root)
    except GitopsError as exc:
        raise type(exc)(f"{what} and committed locally, but pushing failed: {exc}") from None


@dataclass
class AliasChange:
    model: str
    alias: str
    old: str | None
    new: str | None
    commit: str | None
    protected: bool

    @property
    def changed(self) -> bool:
        return self.commit is not None


def set_alias(root: Path, model: str, alias: str, version: str, note: str | None = None,
              commit: bool = True) -> AliasChange:
    """Point ``alias`` at ``version`` (a version id or ``latest``) in its own file; commit."""
    if problem := refs.alias_problem(alias):
        raise RegistryError(problem)
    reg = store.load(root)
    m = reg.model(model)
    _, target = reg.resolve(refs.Ref(model, version))
    if version != "latest" and not refs.is_version(version):
        raise RegistryError(f"'{version}' is not a version id (v1, v2, ...); aliases point at versions")
    old = m.aliases[alias].version if alias in m.aliases else None
    if old == target.id and (note is None or m.aliases[alias].note == note):
        return AliasChange(model, alias, old, target.id, None, alias in m.protected)
    if commit:
        git.require_clean(root, f"move alias '{alias}'")
    rel = store.alias_file(model, alias)
    with _transaction(root, [rel], [] if old else [root / rel]):
        store.write_alias(root, model, Alias(alias, target.id, note))
        sha = _commit_registry_change(root, [rel], f"alias {model} {alias}: {old or 'none'} -> {target.id}"
                                      + (f"\n\n{note}" if note else "")) if commit else None
    return AliasChange(model, alias, old, target.id, sha, alias in m.protected)


def unset_alias(root: Path, model: str, alias: str) -> AliasChange:
    reg = store.load(root)
    m = reg.model(model)
    if alias not in m.aliases:
        raise NotFoundError(f"model '{model}' has no alias '{alias}'")
    git.require_clean(root, f"remove alias '{alias}'")
    rel = store.alias_file(model, alias)
    old = m.aliases[alias].version
    with _transaction(root, [rel], []):
        git.run(root, "rm", "-q", "--", rel)
        sha = git.commit(root, f"alias {model} {alias}: {old} -> none", paths=[rel])
    return AliasChange(model, alias, old, None, sha, alias in m.protected)
