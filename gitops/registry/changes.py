"""What changed in the registry between two states: alias moves, new versions, changed versions.

Workflows use the diff (``gitops diff BASE HEAD --json``) to decide what to evaluate and what to
deploy; ``gitops check --base`` uses :func:`immutability_problems` to keep released versions as
they were. Pure functions over two :class:`~gitops.core.reader.Registry` values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gitops.core import layout, refs
from gitops.core.reader import Registry
from gitops.errors import Problem, RegistryError

# GitHub runs at most this many jobs of one matrix (and fails the whole workflow beyond it).
MAX_EVAL_JOBS = 256


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    old: str | None  # None: the alias is new
    new: str | None  # None: the alias was removed
    protected: bool
    file: str
    format: str | None = None  # the format of ``new`` (None when the alias was removed)


@dataclass(frozen=True)
class NewVersion:
    model: str
    version: str
    format: str
    parent: str | None
    file: str


@dataclass
class RegistryDiff:
    base: str
    head: str
    alias_moves: list[AliasMove] = field(default_factory=list)
    new_versions: list[NewVersion] = field(default_factory=list)
    new_models: list[str] = field(default_factory=list)
    removed_models: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.alias_moves or self.new_versions or self.new_models or self.removed_models)

    def to_dict(self) -> dict:
        """The JSON workflows read; ``evaluate`` is the matrix of candidates to evaluate (at most
        :data:`MAX_EVAL_JOBS`), ``not_evaluated`` the references of the candidates beyond it."""
        out = asdict(self)
        out["evaluate"], skipped = self.bounded_matrix()
        out["not_evaluated"] = [e["ref"] for e in skipped]
        return out

    def bounded_matrix(self) -> tuple[list[dict], list[dict]]:
        """The evaluation matrix cut to what one GitHub matrix runs, and what was cut: candidates
        an alias moved to come first, so only new versions nothing points at are ever left out.
        More alias-move candidates than one matrix holds is a RegistryError (split the PR)."""
        matrix = self.evaluation_matrix()
        moved = sum(1 for e in matrix if e["aliases"])
        if moved > MAX_EVAL_JOBS:
            raise RegistryError(f"{self.base}..{self.head} moves aliases to {moved:,} versions, but a GitHub "
                                f"workflow matrix runs at most {MAX_EVAL_JOBS} jobs: split the pull request so "
                                "each one moves aliases to fewer versions")
        return matrix[:MAX_EVAL_JOBS], matrix[MAX_EVAL_JOBS:]

    def evaluation_matrix(self) -> list[dict]:
        """One entry per candidate version: those an alias moved to, then other new versions.

        A version that several aliases moved to is evaluated once; ``alias`` is the protected one
        if any (its report matters most) and ``aliases`` lists them all."""
        entries: dict[tuple[str, str], dict] = {}
        for move in sorted(self.alias_moves, key=lambda m: not m.protected):
            if move.new is None:
                continue
            entry = entries.setdefault((move.model, move.new), {
                "model": move.model, "version": move.new, "alias": move.alias, "aliases": [],
                "ref": f"{move.model}@{move.new}"})
            entry["aliases"].append(move.alias)
        for nv in self.new_versions:
            entries.setdefault((nv.model, nv.version), {
                "model": nv.model, "version": nv.version, "alias": None, "aliases": [],
                "ref": f"{nv.model}@{nv.version}"})
        return list(entries.values())


def diff_registries(base: Registry, head: Registry, base_name: str = "base", head_name: str = "head"
                    ) -> RegistryDiff:
    result = RegistryDiff(base=base_name, head=head_name)
    result.new_models = sorted(set(head.models) - set(base.models))
    result.removed_models = sorted(set(base.models) - set(head.models))
    for name in sorted(head.models):
        new_model = head.models[name]
        old_model = base.models.get(name)
        old_versions = old_model.versions if old_model else {}
        for vid in sorted(set(new_model.versions) - set(old_versions), key=refs.version_number):
            v = new_model.versions[vid]
            result.new_versions.append(NewVersion(name, vid, v.format, v.parent, layout.model_file(name)))
        old_aliases = old_model.aliases if old_model else {}
        for alias in sorted(set(new_model.aliases) | set(old_aliases)):
            old = old_aliases[alias].version if alias in old_aliases else None
            new = new_model.aliases[alias].version if alias in new_model.aliases else None
            if old != new:
                protected = alias in new_model.protected or bool(old_model and alias in old_model.protected)
                fmt = new_model.versions[new].format if new in new_model.versions else None
                result.alias_moves.append(AliasMove(name, alias, old, new, protected,
                                                    layout.alias_file(name, alias), fmt))
    return result


NULL_SHA = "0" * 40  # what GitHub sends as `before` for a push that creates the branch


def immutability_problems(base: Registry, head: Registry, base_name: str) -> list[Problem]:
    """Released versions are append-only: none removed, none changed since ``base``."""
    out = []
    for name, old_model in base.models.items():
        src = layout.model_file(name)
        new_model = head.models.get(name)
        if new_model is None:
            if old_model.versions and src not in head.texts:
                out.append(Problem(src, None, None,
                                   f"model '{name}' was removed, but it has released versions at {base_name}"))
            continue
        for vid, old in old_model.versions.items():
            new = new_model.versions.get(vid)
            if new is None:
                out.append(Problem(src, None, vid, f"version {vid} was removed; released versions are immutable"))
                continue
            before, after = old.to_dict(), new.to_dict()
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if changed:
                out.append(Problem(src, None, vid, f"version {vid} changed ({', '.join(changed)}) since {base_name}; "
                                   "released versions are immutable, register a new version instead"))
    return out
