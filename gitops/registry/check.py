"""``gitops check``: every problem in the registry at once, each one sentence with its place."""

from __future__ import annotations

from pathlib import Path

from gitops.adapters.dvc import read_pointer
from gitops.core import layout, settings, toolkit
from gitops.core.promptspec import read_stored, stored_config
from gitops.core.reader import Registry
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import GitopsError, Problem, shown
from gitops.registry import codeowners_text
from gitops.registry.changes import DATA_POINTER, data_pointer_problem, immutability_problems
from gitops.validation import Problems

MAX_POINTER_BYTES = 1 << 20  # a DVC pointer is a few hundred bytes
DATA_DIR = "data"  # what data.dvc tracks (gitops.data.ingest; the registry sits below data)


def check(ws: Workspace, base: str | None = None, remote: bool = False) -> list[Problem]:
    """All problems found; an empty list means the registry is sound."""
    reg = ws.registry(strict=False)
    problems = Problems(reg.problems)
    problems += stray_alias_files(ws.root)
    cfg = settings.read(ws.root, problems)
    problems += _pointer_problems(ws, reg)
    problems += _base_problems(reg)
    problems += _task_problems(reg)
    if base is not None:
        base_reg = ws.registry_at(base, strict=False)
        problems += immutability_problems(base_reg, reg, base)
        problems += _data_pointer_problems(ws, base, base_reg, reg)
    if not reg.problems and not codeowners_text.in_sync(ws.root, reg, cfg.admins, cfg.admin_paths):
        problems.append(Problem("", None, None, f"{codeowners_text.CODEOWNERS} is out of sync with the protected "
                                "aliases (run 'gitops codeowners --write')"))
    problems += toolkit.problems(ws.root)
    if remote:
        problems += _remote_problems(ws, reg)
    return list(problems)


def _data_pointer_problems(ws: Workspace, base: str, base_reg: Registry, reg: Registry) -> list[Problem]:
    """``data.dvc`` changed only by ingests since ``base`` (see :func:`data_pointer_problem`)."""
    commit = ws.git.resolve(base)
    before = ws.git.read_blobs([f"{commit}:{DATA_POINTER}"])[f"{commit}:{DATA_POINTER}"]
    path = ws.root / DATA_POINTER
    after = None
    if path.is_symlink() or path.is_dir() or (path.is_file() and path.stat().st_size > MAX_POINTER_BYTES):
        after = "not a pointer"  # never read: a link may lead anywhere, a huge file is no pointer
    elif path.is_file():
        after = path.read_text(encoding="utf-8", errors="replace")
    why = data_pointer_problem(before, after, base_reg, reg, base)
    return [Problem(DATA_POINTER, None, None, why)] if why else []


def stray_alias_files(root: Path) -> list[Problem]:
    """Entries of ``registry/<model>/aliases/`` that gitops does not read. Only ``<alias>.yaml`` is an
    alias, so a ``production.yml`` or ``production.YAML`` beside ``production.yaml`` would look like a
    change to a reviewer and say nothing to gitops: refuse anything else."""
    out = []
    for entry in sorted((root / layout.REGISTRY).glob("*/aliases/*")):
        rel = entry.relative_to(root).as_posix()
        if entry.is_symlink() or not entry.is_file():
            out.append(Problem(rel, None, None, "only .yaml files belong among the aliases, and only regular "
                               "files (this is a link or a directory); remove it"))
        elif not entry.name.endswith(".yaml"):
            stem = entry.name.split(".", 1)[0] or "ALIAS"
            out.append(Problem(rel, None, None, f"only .yaml files are aliases, so gitops ignores this one; "
                               f"rename it to {shown(stem)}.yaml or remove it"))
    return out


def _pointer_problems(ws: Workspace, reg: Registry) -> list[Problem]:
    """Each version's weights are tracked by its own ``.dvc`` file whose md5 is the registry's."""
    out = []
    for model in reg.models.values():
        src = layout.model_file(model.name)
        for v in model.versions.values():
            pointer = ws.root / layout.pointer(v)
            if v.format == "prompt" and not pointer.exists():  # a config in git (older ones: a directory in DVC)
                out.extend(_prompt_file_problems(ws, src, model.name, v))
                continue
            if not pointer.exists():
                out.append(Problem(src, None, v.id, f"version {v.id}: {layout.pointer(v)} is missing "
                                   "(weights not tracked by DVC)"))
                continue
            try:
                md5 = read_pointer(pointer)["md5"]
            except GitopsError as exc:
                out.append(Problem("", None, None, str(exc)))
                continue
            if md5 != v.md5:
                out.append(Problem(src, None, v.id,
                                   f"version {v.id}: md5 {v.md5} disagrees with {layout.pointer(v)} ({md5})"))
    return out


def _prompt_file_problems(ws: Workspace, src: str, model: str, v: Version) -> list[Problem]:
    """A prompt version's config is a file in git whose md5 is the registry's, valid as ``prompt add``
    would have it, and equal to model.yaml's copy: what every runner checks (``stored_config``)."""
    path = ws.root / v.path
    if not path.is_file():
        return [Problem(src, None, v.id, f"version {v.id}: its prompt config {v.path} is missing")]
    try:
        stored_config(f"{model}@{v.id}", v, read_stored(path))
    except GitopsError as exc:
        return [Problem(src, None, v.id, f"version {v.id}: {str(exc).split(': ', 1)[-1]}")]
    return []


def _base_problems(reg: Registry) -> list[Problem]:
    """A version pinned to a base (``base_md5``, a LoRA adapter) names a registered version whose md5
    is still that one: an adapter merged into other weights would be another model."""
    out = []
    for model in reg.models.values():
        src = layout.model_file(model.name)
        for v in model.versions.values():
            if not v.base_md5:
                continue
            name, _, vid = (v.base_model or "").partition("@")
            base = reg.models[name].versions.get(vid) if name in reg.models else None
            if base is None:
                out.append(Problem(src, None, v.id, f"version {v.id}: base_model '{v.base_model}' is not a "
                                   "registered version, but base_md5 pins the adapter to one"))
            elif base.md5 != v.base_md5:
                out.append(Problem(src, None, v.id, f"version {v.id}: base_md5 {v.base_md5} is not the md5 of "
                                   f"{v.base_model} ({base.md5})"))
    return out


def _task_problems(reg: Registry) -> list[Problem]:
    """An alias names a version that runs with the model's classification block: one added with
    another block (``task_md5``) is refused by predict and serve, so the alias would serve nothing."""
    out = []
    for model in reg.models.values():
        for alias in model.aliases.values():
            version = model.versions.get(alias.version)
            if version is None or not version.task_md5 or version.task_md5 == model.task_md5():
                continue
            out.append(Problem(layout.alias_file(model.name, alias.name), None, None,
                               f"alias '{alias.name}' points to {version.id}, which was added with another "
                               f"classification block (md5 {version.task_md5}, now {model.task_md5() or 'none'}): "
                               "predict and serve refuse it; add the version again under this block and move the "
                               "alias, or restore the block"))
    return out


def _remote_problems(ws: Workspace, reg: Registry) -> list[Problem]:
    """The DVC remote answers (configured, its plugin installed, the credentials accepted, the
    bucket there); then one problem per version, and for the data sets, whose files it lacks."""
    if problem := ws.dvc.remote_problem():
        return [Problem(".dvc/config", None, None, problem)]
    versions = [(m.name, v) for m in reg.models.values() for v in m.versions.values()
                if (ws.root / layout.pointer(v)).exists()]
    data = (ws.root / DATA_POINTER).exists()
    if not versions and not data:
        return []
    missing = ws.dvc.missing_on_remote([layout.pointer(v) for _, v in versions] + ([DATA_POINTER] if data else []))
    out = []
    for model, v in versions:
        if any(path == v.path or path.startswith(v.path + "/") for path in missing):
            out.append(Problem(layout.model_file(model), None, v.id, f"version {v.id}: {v.path} is not on the "
                               f"DVC remote (run 'dvc push {layout.pointer(v)}')"))
    if data and any(path == DATA_DIR or path.startswith(DATA_DIR + "/") for path in missing):
        out.append(Problem(DATA_POINTER, None, None, f"the data sets' files ({DATA_DIR}/) are not all on the DVC "
                           f"remote (run 'dvc push {DATA_POINTER}')"))
    return out
