"""``gitops history``: who moved which alias to which version, when, in which commit (and PR)."""

from __future__ import annotations

import dataclasses

from gitops.core import layout, refs
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError, RegistryError
from gitops.registry.audit import AliasEvent, alias_events, alias_specs


def history(ws: Workspace, model: str, alias: str | None = None, limit: int | None = None) -> list[AliasEvent]:
    """Alias moves for ``model`` (one alias or all), newest first.

    Follows the first-parent line of the current branch, so a change merged through a pull request
    is listed once, as the merge that landed it (its author is who merged, its subject has the PR)."""
    m = ws.registry().model(model)
    if alias is not None and (problem := refs.alias_problem(alias)):
        raise RegistryError(problem)
    events = _events(ws, model, alias)
    if alias is not None and alias not in m.aliases and not events \
            and not (ws.root / layout.alias_file(model, alias)).exists():
        raise NotFoundError(f"model '{model}' has no alias '{alias}' and never had one")
    events = events[:limit] if limit else events
    return [_landed_on(e, m.versions.get(e.new or "")) for e in events]


def _landed_on(event: AliasEvent, version: Version | None) -> AliasEvent:
    """The event with what its new version is: the format, and the base an adapter stands on."""
    if version is None:
        return event
    base = version.base_model if version.format in ("peft-lora", "head") else None
    return dataclasses.replace(event, new_format=version.format, new_base=base)


def _events(ws: Workspace, model: str, alias: str | None) -> list[AliasEvent]:
    if ws.git.head() is None:
        return []
    path = layout.alias_file(model, alias) if alias else layout.aliases_dir(model)
    entries = list(reversed(ws.git.log([path], first_parent=True)))
    return alias_events(entries, ws.git.read_blobs(alias_specs(entries, model)), model)
