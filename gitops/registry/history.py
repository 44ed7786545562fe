"""``gitops history``: who moved which alias to which version, when, in which commit (and PR)."""

from __future__ import annotations

import dataclasses

from gitops.adapters.git import LogEntry
from gitops.core import layout, refs
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError, RegistryError
from gitops.registry.audit import AliasEvent, alias_events, alias_specs


def history(ws: Workspace, model: str, alias: str | None = None, limit: int | None = None,
            rev: str | None = None) -> list[AliasEvent]:
    """Alias moves for ``model`` (one alias or all), newest first.

    Follows the first-parent line of the current branch (or of ``rev``), so a change merged through
    a pull request is listed once, as the merge that landed it (its author is who merged, its
    subject has the PR)."""
    m = (ws.registry() if rev is None else ws.registry_at(rev)).model(model)
    if alias is not None and (problem := refs.alias_problem(alias)):
        raise RegistryError(problem)
    path = layout.alias_file(model, alias) if alias else layout.aliases_dir(model)
    events = _events(ws, [model], [path], rev)[model]
    if alias is not None and alias not in m.aliases and not events \
            and not (ws.root / layout.alias_file(model, alias)).exists():
        raise NotFoundError(f"model '{model}' has no alias '{alias}' and never had one")
    events = events[:limit] if limit else events
    return [_landed_on(e, m.versions.get(e.new or "")) for e in events]


def histories(ws: Workspace, rev: str, log: list[LogEntry] | None = None) -> dict[str, list[AliasEvent]]:
    """Every alias move of every model in the registry at ``rev``, newest first per model: one git
    log and one blob read for all of them (what ``gitops site`` draws the timelines from). ``log``:
    the first-parent history of ``registry/`` from ``rev`` when the caller already read it."""
    registry = ws.registry_at(rev)
    models = sorted(registry.models)
    found = _events(ws, models, [layout.aliases_dir(m) for m in models], rev, log)
    return {name: [_landed_on(e, registry.models[name].versions.get(e.new or "")) for e in events]
            for name, events in found.items()}


def _landed_on(event: AliasEvent, version: Version | None) -> AliasEvent:
    """The event with what its new version is: the format, and the base an adapter stands on."""
    if version is None:
        return event
    base = version.base_model if version.format in ("peft-lora", "head") else None
    return dataclasses.replace(event, new_format=version.format, new_base=base)


def _events(ws: Workspace, models: list[str], paths: list[str], rev: str | None,
            log: list[LogEntry] | None = None) -> dict[str, list[AliasEvent]]:
    if not models or (rev is None and ws.git.head() is None):
        return {m: [] for m in models}
    if log is None:
        log = ws.git.log(paths, first_parent=True, rev=rev)
    prefixes = tuple(paths)
    entries = [e for e in reversed(log) if any(p.startswith(prefixes) for p in e.paths)]
    blobs = ws.git.read_blobs([spec for m in models for spec in alias_specs(entries, m)])
    return {m: alias_events(entries, blobs, m) for m in models}
