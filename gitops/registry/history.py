"""The audit trail: who moved which alias to which version, when, in which commit (and PR)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gitops import yamlio
from gitops.adapters import git
from gitops.errors import RegistryError
from gitops.registry import store

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


def pr_number(subject: str) -> int | None:
    """The PR number GitHub's merge or squash message carries, if any."""
    for pattern in _PR_PATTERNS:
        if m := pattern.search(subject):
            return int(m.group(1))
    return None


def history(root: Path, model: str, alias: str | None = None, limit: int | None = None) -> list[AliasEvent]:
    """Alias moves for ``model`` (one alias or all), newest first.

    Follows the first-parent line of the current branch, so a change merged through a pull request
    is listed once, as the merge that landed it (its author is who merged, its subject has the PR)."""
    path = store.alias_file(model, alias) if alias else f"{store.REGISTRY}/{model}/aliases/"
    entries = list(reversed(_first_parent_log(root, path)))
    specs = [f"{e.commit}:{p}" for e in entries for p in e.paths if _is_alias_file(p, model)]
    blobs = git.read_blobs(root, specs)
    state: dict[str, str | None] = {}
    events: list[AliasEvent] = []
    for entry in entries:
        for p in entry.paths:
            if not _is_alias_file(p, model):
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
    return events[:limit] if limit else events


def _first_parent_log(root: Path, path: str) -> list[git.LogEntry]:
    if git.head(root) is None:
        return []
    fmt = "%x1e%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1f%b%x1f"
    out = git.run(root, "log", "--first-parent", "--diff-merges=first-parent", f"--format={fmt}",
                  "--name-only", "--no-renames", "--", path)
    entries = []
    for chunk in out.split("\x1e")[1:]:
        commit, author, email, date, subject, body, files = chunk.split("\x1f")[:7]
        entries.append(git.LogEntry(commit, author, email, date, subject, body.strip(),
                                    tuple(f for f in files.split("\n") if f.strip())))
    return entries


def _is_alias_file(path: str, model: str) -> bool:
    prefix = f"{store.REGISTRY}/{model}/aliases/"
    return path.startswith(prefix) and path.endswith(".yaml") and "/" not in path[len(prefix):]


def _read_alias(text: str | None, path: str) -> tuple[str | None, str | None]:
    if text is None:
        return None, None  # removed in this commit
    try:
        doc = yamlio.loads(text, path)
    except RegistryError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    version = doc.get("version")
    return (version if isinstance(version, str) else None), doc.get("note")
