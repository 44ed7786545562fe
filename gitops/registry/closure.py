"""What a change does to the trust closure of every protected alias: the one computation behind
``gitops approvals --pr N`` (the required check, against GitHub) and ``gitops approvals --base REF``
(offline, before a pull request exists).

The rule is one sentence: anything that can change what a protected alias computes is either
immutable once released, or needs that alias's owners. So the guarded set is derived from the
registry's own lineage, not from a list of keys. A protected alias's closure, read at the BASE
(what is protected there, and who owns it, is never the pull request's to say), is:

- its alias file, and the version it names: the version's record in ``model.yaml``, its weights
  pointer (``models/M/vN.dvc``, or a prompt version's config file), and, through ``base_model``,
  the base version it runs on (recursively);
- the model's task block (``task``, ``classification``);
- every data set it trains on (``dataset``), retrieves from (a prompt config's ``dataset``) or is
  evaluated on (evaluation reads the training data set at ``latest``): the data set's file, its
  batches (``data.dvc``, and anything under ``data/<set>/`` tracked in git);
- and what every closure shares, which the admins own: the machinery (``.github/``, CODEOWNERS,
  ``gitops.yaml`` with its deploy hooks, compared by meaning; ``.dvc/``, the remotes the
  credentials go to; the ``admin_paths`` of gitops.yaml) and the ``protected``/``gates`` lines of a
  ``model.yaml``.

Released records and bytes (versions, data set versions, batches) are also immutable:
``gitops check --base`` refuses a change to them outright; they are listed here too (``immutable``)
so one list holds every change that touches a protected closure. Everything is read through a
:class:`Tree` (GitHub's contents API, a git commit, the work tree), each file once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gitops import yamlio
from gitops.core import layout, refs, schema, settings
from gitops.core.reader import Registry, read_dataset, read_model
from gitops.core.schema import Dataset, Model
from gitops.errors import GitopsError, RegistryError
from gitops.registry import codeowners_rules as codeowners
from gitops.registry.changes import DATA_POINTER, changed_keys, data_pointer_problem
from gitops.saferegex import LinearPattern
from gitops.validation import Problems

ALIAS_PATH = re.compile(r"^registry/(?P<model>[^/]+)/aliases/(?P<alias>[^/]+)\.yaml$")
MODEL_PATH = re.compile(r"^registry/(?P<model>[^/]+)/model\.yaml$")
DATASET_PATH = re.compile(r"^registry/datasets/(?P<name>[^/]+)\.yaml$")
DATA_PATH = re.compile(r"^data/(?P<name>[^/]+)/")
PROTECTION_KEYS = ("protected", "gates")  # the lines of model.yaml that decide what may ship: the admins'
TASK_KEYS = ("task", "classification")  # the model's task block: its protected aliases' owners'
MAX_MODELS = 1000  # models read from the base to find every protected alias
MAX_DEPTH = 8  # base_model links followed from a protected version


class Tree(Protocol):
    """One state of the repository: any file's text (None: absent), a directory's subdirectories."""

    ref: str

    def text(self, path: str) -> str | None: ...

    def dirs(self, path: str) -> list[str] | None: ...


@dataclass(frozen=True)
class Change:
    """One change that needs approval: a protected alias moved (``alias``), the machinery or a
    model's protection changed (``admin``: the admins approve), or something in the closure of
    protected aliases changed (``closure``: their owners approve)."""

    path: str
    what: str
    kind: str
    aliases: tuple[str, ...] = ()  # MODEL@ALIAS whose closure it touches (the alias moved, for kind alias)
    owners: tuple[str, ...] = ()  # who approves, as CODEOWNERS / model.yaml / gitops.yaml write them
    immutable: bool = False  # a released record or batch: `gitops check --base` refuses it as well
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "what": self.what, "kind": self.kind, "aliases": list(self.aliases),
                "owners": list(self.owners), "immutable": self.immutable, "notes": list(self.notes)}

    def line(self) -> str:
        """The change in one sentence (without a verdict on approvals)."""
        if self.kind == "admin":
            return f"{self.path}: {self.what}; it decides what deploys, so an admin approves ({' '.join(self.owners)})"
        frozen = " (released: check --base refuses it)" if self.immutable else ""
        return (f"{self.path}: {self.what}{frozen}; it can change what {', '.join(self.aliases)} "
                f"compute{'s' if len(self.aliases) == 1 else ''}, so their owners approve ({' '.join(self.owners)})")


@dataclass
class Review:
    base: str
    head: str
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "head": self.head, "changes": [c.to_dict() for c in self.changes],
                "notes": list(self.notes)}


@dataclass
class Closure:
    """One protected alias and what it computes with, as the base has it."""

    model: str
    alias: str
    owners: tuple[str, ...]
    notes: tuple[str, ...] = ()
    versions: set[tuple[str, str]] = field(default_factory=set)
    datasets: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.model}@{self.alias}"


class Side:
    """A :class:`Tree` read as the check needs it: each file once, parsed on demand."""

    def __init__(self, tree: Tree) -> None:
        self.tree, self.ref = tree, tree.ref
        self.notes: list[str] = []
        self._texts: dict[str, str | None] = {}
        self._models: dict[str, Model | None] = {}
        self._invalid: dict[str, str | None] = {}  # a model.yaml's first problem (its protection is unknown)
        self._datasets: dict[str, Dataset | None] = {}
        self._settings: settings.Settings | None = None
        self._codeowners: codeowners.Codeowners | bool | None = False
        self._guarded: list[LinearPattern] | None = None

    def text(self, path: str) -> str | None:
        if path not in self._texts:
            self._texts[path] = self.tree.text(path)
        return self._texts[path]

    def doc(self, path: str) -> tuple[Any, str | None]:
        """``path`` as plain data (None when absent), or the reason it does not parse."""
        text = self.text(path)
        if text is None:
            return None, None
        try:
            return yamlio.plain(yamlio.loads(text, path)), None
        except yamlio.YamlError as exc:
            return None, str(exc)

    def model(self, name: str, *, strict: bool = False) -> Model | None:
        """``registry/<name>/model.yaml`` validated (None: absent, or invalid unless ``strict``)."""
        rel = layout.model_file(name)
        if name not in self._models:
            text, problems = self.text(rel), Problems()
            self._models[name] = None if text is None else read_model(rel, text, name, problems)
            self._invalid[name] = str(problems[0]) if problems else None
        if strict and self._invalid[name]:
            raise RegistryError(f"{rel} on the base branch {self.ref} is invalid: {self._invalid[name]}")
        return self._models[name]

    def dataset(self, name: str) -> Dataset | None:
        rel = layout.dataset_file(name)
        if name not in self._datasets:
            text = self.text(rel)
            self._datasets[name] = None if text is None else read_dataset(rel, text, name, Problems())
        return self._datasets[name]

    def protected(self, name: str) -> dict[str, list[str]]:
        """``{alias: owners}`` that ``model.yaml`` protects here ({} for a model it does not have)."""
        model = self.model(name, strict=True)
        return model.protected if model else {}

    def alias_version(self, model: str, alias: str) -> str | None:
        """The version an alias file names here (None: absent or invalid)."""
        rel = layout.alias_file(model, alias)
        text = self.text(rel)
        try:
            found = schema.parse_alias(yamlio.loads(text, rel), rel, alias, Problems()) if text is not None else None
        except yamlio.YamlError:
            return None
        return found.version if found else None

    def model_names(self) -> list[str]:
        names = [n for n in self.tree.dirs(layout.REGISTRY) or [] if n != layout.DATASETS]
        return names[:MAX_MODELS]

    @property
    def settings(self) -> settings.Settings:
        """``gitops.yaml`` here; what parses of it when it has problems (noted)."""
        if self._settings is None:
            problems = Problems()
            text = self.text(settings.SETTINGS_FILE)
            try:
                doc = yamlio.loads(text, settings.SETTINGS_FILE) if text is not None else None
            except yamlio.YamlError as exc:
                problems.append(exc.problem)
                doc = None
            self._settings = settings.parse(doc, settings.SETTINGS_FILE, problems)
            if problems:
                self.notes.append(f"{settings.SETTINGS_FILE} on {self.ref} has problems ({problems[0]}); using what "
                                  "could be read of it")
        return self._settings

    @property
    def codeowners(self) -> codeowners.Codeowners | None:
        """CODEOWNERS here, where GitHub looks for it first; None if there is none."""
        if self._codeowners is False:
            self._codeowners = None
            for location in codeowners.LOCATIONS:
                text = self.text(location)
                if text is not None:
                    self._codeowners = codeowners.parse(text, location)
                    break
        return self._codeowners  # type: ignore[return-value]

    def guarded(self, path: str) -> bool:
        """Whether ``path`` lies under a path the admins own (the machinery or ``admin_paths``)."""
        if self._guarded is None:
            self._guarded = [codeowners.compile_pattern(p) for p in settings.guarded_paths(self.settings)]
        return any(pattern.match(path) for pattern in self._guarded)


class _Reviewer:
    def __init__(self, base: Side, head: Side, paths: list[str]) -> None:
        self.base, self.head, self.paths = base, head, paths
        self.changes: list[Change] = []
        self._closures: list[Closure] | None = None
        self._admins: list[str] | None = None
        self._files: dict[str, list[tuple[Closure, str]]] = {}

    # -- who owns what, at the base --

    def owners_of(self, model: str, alias: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A protected alias's owners: CODEOWNERS' rule for its file at the base, else model.yaml's."""
        path, owners_file = layout.alias_file(model, alias), self.base.codeowners
        rule = owners_file.rule_for(path) if owners_file else None
        if rule is not None and rule.owners:
            return tuple(rule.owners), ()
        where = "no CODEOWNERS file" if owners_file is None else f"no owner for it in {owners_file.source}"
        return tuple(self.base.protected(model)[alias]), (
            f"{where} on {self.base.ref}; using the owners in {layout.model_file(model)} (run 'gitops codeowners "
            "--write')",)

    def admins(self) -> list[str]:
        """The base's ``admins``, else the owners of every protected alias on the base."""
        if self._admins is None:
            named = self.base.settings.admins
            self._admins = list(dict.fromkeys(named or (o for c in self.closures() for o in
                                                          self.base.protected(c.model)[c.alias])))
        return self._admins

    def closures(self) -> list[Closure]:
        """Every protected alias's closure at the base (read once, on first need)."""
        if self._closures is None:
            self._closures = []
            for name in self.base.model_names():
                for alias in self.base.protected(name):
                    owners, notes = self.owners_of(name, alias)
                    closure = Closure(name, alias, owners, notes)
                    vid = self.base.alias_version(name, alias)
                    if vid is not None:
                        self._walk(closure, name, vid, 0)
                    self._closures.append(closure)
            for closure in self._closures:
                for model, vid in closure.versions:
                    version = self.base.model(model).versions[vid]  # type: ignore[union-attr]
                    for rel in (version.path, layout.pointer(version)):
                        self._files.setdefault(rel, []).append((closure, f"{model}@{vid}"))
        return self._closures

    def _walk(self, closure: Closure, model: str, vid: str, depth: int) -> None:
        found = self.base.model(model)
        version = found.versions.get(vid) if found else None
        if version is None or (model, vid) in closure.versions:
            return
        closure.versions.add((model, vid))
        for ref in (version.dataset, (version.config or {}).get("dataset")):
            if isinstance(ref, str) and (name := _name(ref, "data set")):
                closure.datasets.add(name)
        base_ref = _ref(version.base_model)  # a registered version it runs on (a hub id or a path: none)
        if base_ref is None or base_ref.ref is None or depth >= MAX_DEPTH or self.base.model(base_ref.name) is None:
            return
        bid = base_ref.ref if refs.is_version(base_ref.ref) else self.base.alias_version(base_ref.name, base_ref.ref)
        if bid:
            self._walk(closure, base_ref.name, bid, depth + 1)

    # -- the verdicts --

    def touch(self, path: str, what: str, closures: Iterable[Closure], immutable: bool = False) -> None:
        """``path`` changed ``what`` in these closures: one change per set of owners."""
        groups: dict[tuple[str, ...], list[Closure]] = {}
        for closure in closures:
            groups.setdefault(closure.owners, []).append(closure)
        for owners, group in groups.items():
            notes = tuple(dict.fromkeys(n for c in group for n in c.notes))
            self.changes.append(Change(path, what, "closure", tuple(sorted({c.name for c in group})), owners,
                                       immutable, notes))

    def admin(self, path: str, what: str) -> None:
        if self.admins():  # nothing protected and no admins: nothing to guard
            self.changes.append(Change(path, what, "admin", (), tuple(self.admins()), notes=tuple(self.base.notes)))

    def path(self, path: str) -> None:
        if path == settings.SETTINGS_FILE:
            if what := _meaning(self.base, self.head, path, None):
                self.admin(path, what)
            return
        if self.base.guarded(path):
            self.admin(path, "changed")
            if not path.startswith(layout.REGISTRY + "/"):
                return  # the admins approve it, whatever version's files it might hold
        if match := ALIAS_PATH.fullmatch(path):
            self._alias(path, match["model"], match["alias"])
        elif match := MODEL_PATH.fullmatch(path):
            self._model(path, match["model"])
        elif match := DATASET_PATH.fullmatch(path):
            self._dataset(path, match["name"])
        elif path == DATA_POINTER:
            self._pointer()
        elif match := DATA_PATH.match(path):
            users = [c for c in self.closures() if match["name"] in c.datasets]
            self.touch(path, "a file of the data set's batches changed in git (batches live in DVC, immutable)",
                       users, immutable=True)
        else:
            self._version_file(path)

    def _alias(self, path: str, model: str, alias: str) -> None:
        if alias not in self.base.protected(model):
            return
        owners, notes = self.owners_of(model, alias)
        old, new = self.base.alias_version(model, alias), self.head.alias_version(model, alias)
        moved = f"moved {old or 'none'} -> {new or 'none'}" if old != new else "changed"
        self.changes.append(Change(path, f"protected alias '{alias}' of '{model}' {moved}", "alias",
                                   (f"{model}@{alias}",), owners, notes=notes))

    def _model(self, path: str, model: str) -> None:
        if what := _meaning(self.base, self.head, path, PROTECTION_KEYS):
            self.admin(path, what)
        own = [c for c in self.closures() if c.model == model]
        holding = [c for c in self.closures() if any(m == model for m, _ in c.versions)]
        if not own and not holding:
            return
        before, _ = self.base.doc(path)
        after, error = self.head.doc(path)
        if error or after is None or not isinstance(after, dict):
            what = f"cannot be read at the head ({error})" if error else "deleted" if after is None else "not a mapping"
            self.touch(path, what, _unique(own + holding), immutable=True)
            return
        before = before if isinstance(before, dict) else {}
        if task := [k for k in TASK_KEYS if before.get(k) != after.get(k)]:
            old, new = before.get("classification"), after.get("classification")
            parts = changed_keys(old, new) if isinstance(old, dict) and isinstance(new, dict) else []
            self.touch(path, f"the task block changed ({', '.join(parts or task)}): the prompts and labels of every "
                             "version of the model", own)
        for vid in sorted({v for c in holding for m, v in c.versions if m == model}, key=refs.version_number):
            if what := _version_change(vid, before.get("versions"), after.get("versions")):
                self.touch(path, what, [c for c in holding if (model, vid) in c.versions], immutable=True)

    def _dataset(self, path: str, name: str) -> None:
        users = [c for c in self.closures() if name in c.datasets]
        if not users:
            return
        before, _ = self.base.doc(path)
        after, error = self.head.doc(path)
        if error or after is None or not isinstance(after, dict):
            what = f"cannot be read at the head ({error})" if error else "deleted" if after is None else "not a mapping"
            self.touch(path, f"data set '{name}' {what}", users, immutable=True)
            return
        before = before if isinstance(before, dict) else {}
        parts = []
        if rule := changed_keys(*({k: v for k, v in d.items() if k not in ("name", "description", "versions")}
                                  for d in (before, after))):
            parts.append(f"its {', '.join(rule)} changed")
        versions = before.get("versions")
        released: dict[str, Any] = versions if isinstance(versions, dict) else {}
        for vid in sorted(released, key=lambda v: refs.version_number(v) if refs.is_version(str(v)) else 0):
            if change := _version_change(vid, released, after.get("versions")):
                parts.append(change)
        if parts:
            self.touch(path, f"data set '{name}': " + "; ".join(parts), users, immutable=True)

    def _pointer(self) -> None:
        """``data.dvc`` holds every data set's batches: changed beyond ingests adding versions (what
        the changed data set files show), it touches every closure that reads a data set."""
        users = [c for c in self.closures() if c.datasets]
        if not users:
            return
        names = {m["name"] for p in self.paths if (m := DATASET_PATH.fullmatch(p))}
        base = Registry(datasets={n: d for n in names if (d := self.base.dataset(n)) is not None})
        head = Registry(datasets={n: d for n in names if (d := self.head.dataset(n)) is not None})
        why = data_pointer_problem(self.base.text(DATA_POINTER), self.head.text(DATA_POINTER), base, head,
                                   self.base.ref)
        if why:
            self.touch(DATA_POINTER, why.removeprefix(f"{DATA_POINTER} "), users, immutable=True)

    def _version_file(self, path: str) -> None:
        """A version's weights pointer or prompt config (or a file under its weights directory)."""
        self.closures()
        candidates = [path] + [path[:i] for i, ch in enumerate(path) if ch == "/"]
        hits = [(c, ref) for p in candidates for c, ref in self._files.get(p, [])]
        gone = " (deleted)" if self.head.text(path) is None else ""
        for ref in dict.fromkeys(ref for _, ref in hits):
            self.touch(path, f"the weights pointer or prompt config of {ref} changed{gone}",
                       _unique([c for c, r in hits if r == ref]), immutable=True)


def review(base: Tree, head: Tree, changed: Iterable[str]) -> Review:
    """Every change between ``base`` and ``head`` (the files ``changed``) that needs approval: the
    admins' for the machinery, the owners' for a protected alias and anything in its closure."""
    paths = sorted(set(changed))
    base_side, head_side = Side(base), Side(head)
    reviewer = _Reviewer(base_side, head_side, paths)
    for path in paths:
        reviewer.path(path)
    return Review(base.ref, head.ref, reviewer.changes, list(dict.fromkeys(base_side.notes)))


def _meaning(base: Side, head: Side, path: str, keys: tuple[str, ...] | None) -> str | None:
    """What differs in meaning between the base's and the head's ``path`` (``keys`` only, or every
    top-level key): None when nothing does."""
    before, _ = base.doc(path)
    after, error = head.doc(path)
    if error:
        return f"cannot be read at the head ({error})"
    before = before if isinstance(before, dict) else ({} if before is None else {"": before})
    if after is None:
        kept = [k for k in (keys or before) if before.get(k) not in (None, [], {})]
        return f"deleted (it held {', '.join(map(str, kept))})" if kept else None
    after = after if isinstance(after, dict) else {"": after}
    names = keys or sorted(set(before) | set(after), key=str)
    changed = [str(k) for k in names if before.get(k) != after.get(k)]
    return f"{', '.join(changed)} changed" if changed else None


def _version_change(vid: str, before: Any, after: Any) -> str | None:
    """How released version ``vid`` of a ``versions:`` mapping changed from ``before`` to ``after``."""
    old = before.get(vid) if isinstance(before, dict) else None
    new = after.get(vid) if isinstance(after, dict) else None
    if new is None:
        return f"version {vid} was removed"
    if not isinstance(old, dict) or not isinstance(new, dict):
        return f"version {vid} changed" if old != new else None
    keys = changed_keys(old, new)
    return f"version {vid} changed ({', '.join(keys)})" if keys else None


def _ref(text: str | None) -> refs.RefSpec | None:
    return refs.maybe_ref(text, require_ref=True)  # None for a hub id or a path: not a version of this registry


def _name(text: str, what: str) -> str | None:
    try:
        return refs.parse_ref(text, what).name
    except GitopsError:
        return None


def _unique(closures: list[Closure]) -> list[Closure]:
    return list({id(c): c for c in closures}.values())
