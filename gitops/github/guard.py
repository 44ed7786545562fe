"""What decides deploys, read from a pull request's BASE branch, and whether the pull request changes it.

A protected alias is guarded by its alias file; but a pull request could equally point a deploy
hook at ``staging``, hand an alias to a new owner in CODEOWNERS, loosen a gate, unprotect
``production`` for a later pull request, or rewrite the workflow (or, in a repository that holds the
toolkit, the code) that runs this very check. So the approvals check also asks for an admin's
approval when a pull request changes:

- ``gitops.yaml``, compared by meaning between the base and the head (a comment or re-indentation
  changes nothing; a file that no longer parses, or is deleted, does);
- anything under the guarded paths: ``.github/`` (workflows, local actions, CODEOWNERS),
  ``CODEOWNERS`` wherever GitHub reads it, and the base's ``admin_paths``;
- the ``protected`` or ``gates`` settings of a ``model.yaml``: CODEOWNERS cannot own them, being
  lines of a file anyone appends versions to, hence the comparison by meaning.

The admins are the base branch's ``admins`` in ``gitops.yaml``, or, when it names none, the owners
of every protected alias on the base branch: the owners the generated CODEOWNERS gives the same
paths. A repository that protects nothing has nothing to guard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gitops import yamlio
from gitops.adapters.github import GitHub, PullInfo
from gitops.core import layout as store
from gitops.core import schema, settings
from gitops.validation import Problems
from gitops.errors import RegistryError
from gitops.github import codeowners_rules as codeowners

MODEL_PATH = re.compile(r"^registry/(?P<model>[^/]+)/model\.yaml$")
PROTECTION_KEYS = ("protected", "gates")  # the lines of model.yaml that decide what may ship
MAX_MODELS = 1000  # models listed when the admins must be found through every protected alias


@dataclass(frozen=True)
class GuardedChange:
    """A changed file that decides deploys, and what changed in it (``deploy changed``, ``deleted``)."""

    path: str
    what: str


class Base:
    """The base branch as the check trusts it: settings, CODEOWNERS, protections, read once each."""

    def __init__(self, gh: GitHub, ref: str) -> None:
        self.gh, self.ref = gh, ref
        self.notes: list[str] = []
        self._protected: dict[str, dict[str, list[str]]] = {}
        self._settings: settings.Settings | None = None
        self._codeowners: codeowners.Codeowners | None | bool = False

    def protected(self, model: str) -> dict[str, list[str]]:
        """``{alias: owners}`` that ``model.yaml`` protects on the base branch ({} for a new model)."""
        if model not in self._protected:
            rel = store.model_file(model)
            text = self.gh.file_text(rel, self.ref)
            if text is None:
                self._protected[model] = {}
            else:
                problems = schema.Problems()
                parsed = schema.parse_model(yamlio.loads(text, f"{rel} (at {self.ref})"), rel, model, problems)
                if parsed is None:
                    raise RegistryError(f"{rel} on the base branch {self.ref} is invalid: {problems[0]}")
                self._protected[model] = parsed.protected
        return self._protected[model]

    @property
    def settings(self) -> settings.Settings:
        """``gitops.yaml`` on the base branch; what parses of it when it has problems (noted)."""
        if self._settings is None:
            text = self.gh.file_text(settings.SETTINGS_FILE, self.ref)
            problems = Problems()
            try:
                doc = yamlio.loads(text, settings.SETTINGS_FILE) if text is not None else None
            except yamlio.YamlError as exc:
                problems.append(exc.problem)
                doc = None
            self._settings = settings.parse(doc, settings.SETTINGS_FILE, problems)
            if problems:
                self.notes.append(f"{settings.SETTINGS_FILE} on {self.ref} has problems ({problems[0]}); "
                                  "using what could be read of it")
        return self._settings

    @property
    def codeowners(self) -> codeowners.Codeowners | None:
        """CODEOWNERS on the base branch, where GitHub looks for it first; None if there is none."""
        if self._codeowners is False:
            self._codeowners = None
            for location in codeowners.LOCATIONS:
                text = self.gh.file_text(location, self.ref)
                if text is not None:
                    self._codeowners = codeowners.parse(text, location)
                    break
        return self._codeowners  # type: ignore[return-value]

    def admins(self) -> list[str]:
        """The base's ``admins``, else the owners of every protected alias on the base branch."""
        if self.settings.admins:
            return list(dict.fromkeys(self.settings.admins))
        names = [n for n in self.gh.list_dir(store.REGISTRY, self.ref) or [] if n != store.DATASETS]
        owners = [o for name in names[:MAX_MODELS] for alias_owners in self.protected(name).values()
                  for o in alias_owners]
        return list(dict.fromkeys(owners))

    def guarded(self, path: str) -> bool:
        """Whether ``path`` lies under a path the admins own (the machinery or ``admin_paths``)."""
        return any(codeowners.compile_pattern(p).match(path) for p in settings.guarded_paths(self.settings))


def guarded_changes(gh: GitHub, pr: PullInfo, touched: set[str], base: Base) -> list[GuardedChange]:
    """The changed files among ``touched`` that decide deploys, each with what changed in it."""
    out = []
    for path in sorted(touched):
        if path == settings.SETTINGS_FILE:
            what = _diff(gh, pr, path, None)
        elif base.guarded(path):
            what = "changed"
        elif MODEL_PATH.match(path):
            what = _diff(gh, pr, path, PROTECTION_KEYS)
        else:
            continue
        if what:
            out.append(GuardedChange(path, what))
    return out


def _diff(gh: GitHub, pr: PullInfo, path: str, keys: tuple[str, ...] | None) -> str | None:
    """What differs in meaning between the base's and the head's ``path`` (``keys`` only, or every
    top-level key): None when nothing does."""
    base, _ = _load(gh, path, pr.base_ref)
    head, error = _load(gh, path, pr.head_sha)
    if error:
        return f"cannot be read at the head ({error})"
    if head is None:
        kept = [k for k in (keys or (base or {})) if (base or {}).get(k) not in (None, [], {})]
        return f"deleted (it held {', '.join(map(str, kept))})" if kept else None
    base = base or {}
    names = keys or sorted(set(base) | set(head), key=str)
    changed = [str(k) for k in names if base.get(k) != head.get(k)]
    return f"{', '.join(changed)} changed" if changed else None


def _load(gh: GitHub, path: str, ref: str) -> tuple[dict[Any, Any] | None, str | None]:
    """``path`` at ``ref`` as plain data (None when absent), or the reason it does not parse."""
    text = gh.file_text(path, ref)
    if text is None:
        return None, None
    try:
        doc = yamlio.plain(yamlio.loads(text, path))
    except yamlio.YamlError as exc:
        return None, str(exc)
    return (doc if isinstance(doc, dict) else {"": doc}), None
