"""What changed in the registry between two states: alias moves, new versions, changed versions.

Workflows use the diff (``gitops diff BASE HEAD --json``) to decide what to evaluate and what to
deploy; ``gitops check --base`` uses :func:`immutability_problems` to keep released versions as
they were. Pure functions over two :class:`~gitops.core.reader.Registry` values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gitops import yamlio
from gitops.core import layout, refs
from gitops.core.reader import Registry
from gitops.core.schema import Dataset, DatasetVersion
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
    """Released versions are append-only: none removed, none changed since ``base``; the same for
    data set versions, and a data set with released versions keeps its schema and split rule."""
    out = []
    for name, old_model in base.models.items():
        src = layout.model_file(name)
        new_model = head.models.get(name)
        if new_model is None:
            if old_model.versions and src not in head.texts:
                out.append(Problem(src, None, None,
                                   f"model '{name}' was removed, but it has released versions at {base_name}"))
            continue
        out += _version_problems(src, old_model.versions, new_model.versions, base_name,
                                 "released versions are immutable, register a new version instead")
    for name, old_ds in base.datasets.items():
        src = layout.dataset_file(name)
        new_ds = head.datasets.get(name)
        if new_ds is None:
            if old_ds.versions and src not in head.texts:
                out.append(Problem(src, None, None, f"data set '{name}' was removed, but it has released versions "
                                   f"at {base_name}"))
            continue
        if old_ds.versions and (changed := changed_keys(_rule(old_ds), _rule(new_ds))):
            out.append(Problem(src, None, changed[0], f"data set '{name}': its {', '.join(changed)} changed since "
                               f"{base_name}; a data set's schema and split rule are fixed once it has released "
                               "versions (create a new data set instead)"))
        out += _version_problems(src, old_ds.versions, new_ds.versions, base_name,
                                 "released data set versions are immutable (record and bytes), ingest a new "
                                 "version instead")
    return out


def _rule(dataset: Dataset) -> dict[str, Any]:
    """What a data set's released rows were made with: everything in its header but the description."""
    return {k: v for k, v in dataset.header_dict().items() if k not in ("name", "description")}


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two plain mappings, sorted."""
    return sorted(str(k) for k in set(before) | set(after) if before.get(k) != after.get(k))


def _version_problems(src: str, old: dict[str, Any], new: dict[str, Any], base_name: str, why: str) -> list[Problem]:
    out = []
    for vid, before in old.items():
        after = new.get(vid)
        if after is None:
            out.append(Problem(src, None, vid, f"version {vid} was removed; {why.split(',')[0]}"))
        elif changed := changed_keys(before.to_dict(), after.to_dict()):
            out.append(Problem(src, None, vid,
                               f"version {vid} changed ({', '.join(changed)}) since {base_name}; {why}"))
    return out


DATA_POINTER = "data.dvc"  # one DVC pointer for every data set's batches (gitops.data.ingest)
FILES_PER_INGEST = 2  # an ingest adds its batch and the batch's key shard to data/


def pointer_out(text: str | None) -> dict[str, Any] | None:
    """The one output of a ``.dvc`` pointer's text (None: absent or not a pointer)."""
    if text is None:
        return None
    try:
        doc = yamlio.plain(yamlio.loads(text, DATA_POINTER))
    except yamlio.YamlError:
        return None
    outs = doc.get("outs") if isinstance(doc, dict) else None
    return outs[0] if isinstance(outs, list) and len(outs) == 1 and isinstance(outs[0], dict) else None


def new_dataset_versions(base: Registry, head: Registry) -> list[DatasetVersion]:
    """Data set versions at ``head`` that ``base`` does not have."""
    return [v for name, ds in head.datasets.items() for vid, v in ds.versions.items()
            if name not in base.datasets or vid not in base.datasets[name].versions]


def data_pointer_problem(base_text: str | None, head_text: str | None, base: Registry, head: Registry,
                         base_name: str) -> str | None:
    """Why ``data.dvc``'s change from ``base_text`` to ``head_text`` is more than ingests adding
    versions, or None. An ingest only adds files (its batch and key shard) to ``data/`` and records
    the pointer it wrote as its version's ``md5``; anything else rewrites or drops released batches.
    (Which files changed lives in DVC, out of reach here: a rewrite hidden beside an honest ingest
    is refused by every reader, which checks each batch against its recorded hash.)"""
    if base_text == head_text:
        return None
    before, after = pointer_out(base_text), pointer_out(head_text)
    if before is not None and after is not None and before.get("md5") == after.get("md5"):
        return None  # the same data, written differently
    if after is None:
        return (f"{DATA_POINTER} was removed or is no longer a DVC pointer since {base_name}, but it holds every "
                "released batch" if before is not None else None)
    new = new_dataset_versions(base, head)
    if not new:
        return (f"{DATA_POINTER} changed since {base_name}, but no data set version was added: released batches "
                "are immutable (only 'gitops ingest' changes it, adding a version); restore it")
    if after.get("md5") not in {v.md5 for v in new}:
        return (f"{DATA_POINTER} (md5 {after.get('md5')}) is not the data any new data set version recorded "
                f"({', '.join(sorted({v.md5 for v in new}))}): every ingest records the pointer it wrote")
    if before is not None and isinstance(before.get("nfiles"), int) and isinstance(after.get("nfiles"), int):
        expected = before["nfiles"] + FILES_PER_INGEST * len(new)
        if after["nfiles"] != expected:
            return (f"{DATA_POINTER} lists {after['nfiles']} files, but {base_name}'s {before['nfiles']} plus "
                    f"{FILES_PER_INGEST} for each of the {len(new)} new data set version(s) make {expected}: files "
                    "were added to or removed from data/ beside the ingests")
    return None
