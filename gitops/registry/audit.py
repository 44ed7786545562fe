"""The audit trail read from git: which alias moved to which version, when, by whom, in which PR.

Pure parsing: :func:`alias_events` turns first-parent log entries and the alias files' texts at
those commits into :class:`AliasEvent` records. ``gitops history`` (:mod:`gitops.registry.history`)
does the git reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitops import yamlio
from gitops.adapters.git import LogEntry
from gitops.core import layout

_PR_PATTERNS = (re.compile(r"^Merge pull request #(\d+)\b"), re.compile(r"\(#(\d+)\)\s*$"))


@dataclass(frozen=True)
class AliasEvent:
    model: str
    alias: str
    old: str | None
    new: str | None  # None: the alias was removed
    commit: str
    author: str
    email: str
    date: str
    subject: str
    pr: int | None
    note: str | None
    new_format: str | None = None  # what the alias now names: its format, and for peft-lora its base
    new_base: str | None = None


def pr_number(subject: str) -> int | None:
    """The PR number GitHub's merge or squash message carries, if any."""
    for pattern in _PR_PATTERNS:
        if m := pattern.search(subject):
            return int(m.group(1))
    return None


def is_alias_file(path: str, model: str) -> bool:
    prefix = layout.aliases_dir(model)
    return path.startswith(prefix) and path.endswith(".yaml") and "/" not in path[len(prefix):]


def alias_specs(entries: list[LogEntry], model: str) -> list[str]:
    """The ``commit:path`` blobs :func:`alias_events` needs (read them in one git process)."""
    return [f"{e.commit}:{p}" for e in entries for p in e.paths if is_alias_file(p, model)]


def alias_events(entries: list[LogEntry], blobs: dict[str, str | None], model: str) -> list[AliasEvent]:
    """Alias moves of ``model``, newest first, from log ``entries`` given oldest first."""
    state: dict[str, str | None] = {}
    events: list[AliasEvent] = []
    for entry in entries:
        for p in entry.paths:
            if not is_alias_file(p, model):
                continue
            name = p.rsplit("/", 1)[1][: -len(".yaml")]
            version, note = _read_alias(blobs.get(f"{entry.commit}:{p}"), p)
            old = state.get(name)
            if version == old:
                continue
            state[name] = version
            events.append(AliasEvent(model, name, old, version, entry.commit, entry.author, entry.email,
                                     entry.date, entry.subject, pr_number(entry.subject), note))
    events.reverse()
    return events


def _read_alias(text: str | None, path: str) -> tuple[str | None, str | None]:
    if text is None:
        return None, None  # removed in this commit
    try:
        doc = yamlio.loads(text, path)
    except yamlio.YamlError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    version = doc.get("version")
    return (version if isinstance(version, str) else None), doc.get("note")
