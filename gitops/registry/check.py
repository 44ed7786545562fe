"""``gitops check``: every problem in the registry at once, each one sentence."""

from __future__ import annotations

from pathlib import Path

from gitops import config
from gitops.adapters import dvc
from gitops.errors import GitopsError
from gitops.registry import codeowners, store
from gitops.registry.schema import Problems
from gitops.registry.store import Registry


def check(root: Path, base: str | None = None, remote: bool = False) -> list[str]:
    """All problems found; an empty list means the registry is sound."""
    reg = store.load(root, strict=False)
    problems = Problems(reg.problems)
    cfg = config.load_config(root, strict=False, problems=problems)
    problems += _pointer_problems(root, reg)
    if base is not None:
        problems += immutability_problems(store.load(root, ref=base, strict=False), reg, base)
    if not reg.problems and not codeowners.in_sync(root, reg, cfg.admins):
        problems.append(f"{codeowners.CODEOWNERS} is out of sync with the protected aliases "
                        "(run 'gitops codeowners --write')")
    if remote:
        problems += _remote_problems(root, reg)
    return list(problems)


def _pointer_problems(root: Path, reg: Registry) -> list[str]:
    """Each version's weights are tracked by its own ``.dvc`` file whose md5 is the registry's."""
    out = []
    for model in reg.models.values():
        src = store.model_file(model.name)
        for v in model.versions.values():
            pointer = root / f"{v.path}.dvc"
            if not pointer.exists():
                out.append(f"{src}: version {v.id}: {v.path}.dvc is missing (weights not tracked by DVC)")
                continue
            try:
                md5 = dvc.read_pointer(pointer)["md5"]
            except GitopsError as exc:
                out.append(str(exc))
                continue
            if md5 != v.md5:
                out.append(f"{src}: version {v.id}: md5 {v.md5} disagrees with {v.path}.dvc ({md5})")
    return out


def immutability_problems(base: Registry, head: Registry, base_name: str) -> list[str]:
    """Released versions are append-only: none removed, none changed since ``base``."""
    out = []
    for name, old_model in base.models.items():
        src = store.model_file(name)
        new_model = head.models.get(name)
        if new_model is None:
            if old_model.versions and src not in head.texts:
                out.append(f"{src}: model '{name}' was removed, but it has released versions at {base_name}")
            continue
        for vid, old in old_model.versions.items():
            new = new_model.versions.get(vid)
            if new is None:
                out.append(f"{src}: version {vid} was removed; released versions are immutable")
                continue
            before, after = old.to_dict(), new.to_dict()
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if changed:
                out.append(f"{src}: version {vid} changed ({', '.join(changed)}) since {base_name}; "
                           "released versions are immutable, register a new version instead")
    return out


def _remote_problems(root: Path, reg: Registry) -> list[str]:
    """One line per version whose files the default DVC remote lacks."""
    versions = [(m.name, v) for m in reg.models.values() for v in m.versions.values()
                if (root / f"{v.path}.dvc").exists()]
    if not versions:
        return []
    missing = dvc.missing_on_remote(root, [f"{v.path}.dvc" for _, v in versions])
    out = []
    for model, v in versions:
        if any(path == v.path or path.startswith(v.path + "/") for path in missing):
            out.append(f"{store.model_file(model)}: version {v.id}: {v.path} is not on the DVC remote "
                       f"(run 'dvc push {v.path}.dvc')")
    return out
