"""``gitops alias set`` / ``gitops alias unset``: move an alias in its own file, as one commit."""

from __future__ import annotations

from dataclasses import dataclass

from gitops.core import layout, refs, schema
from gitops.core.schema import Alias
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError, RegistryError


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


def set_alias(ws: Workspace, model: str, alias: str, version: str, note: str | None = None,
              commit: bool = True) -> AliasChange:
    """Point ``alias`` at ``version`` (a version id or ``latest``) in its own file; commit."""
    if problem := refs.alias_problem(alias):
        raise RegistryError(problem)
    if problem := schema.note_problem(note):
        raise RegistryError(problem)
    with ws.writing("alias set"):  # first settle a killed command: its alias file may be half-moved
        reg = ws.registry()
        m = reg.model(model)
        _, target = reg.resolve(refs.RefSpec(model, version))
        if version != "latest" and not refs.is_version(version):
            raise RegistryError(f"'{version}' is not a version id (v1, v2, ...); aliases point at versions")
        old = m.aliases[alias].version if alias in m.aliases else None
        protected = alias in m.protected
        if old == target.id and (note is None or m.aliases[alias].note == note):
            return AliasChange(model, alias, old, target.id, None, protected)
        if commit:
            ws.git.require_clean(f"move alias '{alias}'")
        rel = layout.alias_file(model, alias)
        with ws.transaction([rel], what=f"alias set {model} {alias} {target.id}"):
            layout.write_alias(ws.root, model, Alias(alias, target.id, note))
            message = f"alias {model} {alias}: {old or 'none'} -> {target.id}" + (f"\n\n{note}" if note else "")
            sha = ws.commit([rel], message) if commit else None
    return AliasChange(model, alias, old, target.id, sha, protected)


def unset_alias(ws: Workspace, model: str, alias: str) -> AliasChange:
    """Remove ``alias`` (its file) and commit."""
    with ws.writing("alias unset"):
        m = ws.registry().model(model)
        if alias not in m.aliases:
            raise NotFoundError(f"model '{model}' has no alias '{alias}'")
        ws.git.require_clean(f"remove alias '{alias}'")
        rel = layout.alias_file(model, alias)
        old = m.aliases[alias].version
        protected = alias in m.protected
        with ws.transaction([rel], what=f"alias unset {model} {alias}"):
            (ws.root / rel).unlink()
            sha = ws.commit([rel], f"alias {model} {alias}: {old} -> none")
    return AliasChange(model, alias, old, None, sha, protected)
