"""Helpers every page view shares: where pages live, links between them and to GitHub, times,
and clipping text from data to a bounded length. Views are plain JSON-ready dicts, so a page's
content can be hashed before it is rendered (:mod:`gitops.site.writer`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gitops.core import refs
from gitops.site.gather import Commit, SiteInputs, utc

# Longest text from data shown on a page (longer ends in an ellipsis): pages stay small whatever
# the registry holds, and a page never depends on more than it shows.
LIMITS = {"name": 200, "line": 300, "note": 1000, "text": 2000, "sample": 1000, "config": 20000, "cell": 300}


@dataclass
class Page:
    """One page to write: its path under the site root, its template, and what it shows."""

    path: str
    template: str
    view: dict[str, Any]


def clip(value: object, kind: str = "line") -> str:
    """``value`` as text of at most ``LIMITS[kind]`` characters (None: empty)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    limit = LIMITS[kind]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rel(page: str, target: str) -> str:
    """The link from ``page`` to ``target`` (both paths under the site root, neither with ``..``)."""
    here, _, _ = page.rpartition("/")
    there, _, name = target.rpartition("/")
    if here == there:
        return name
    if here and there.startswith(here + "/"):
        return target[len(here) + 1:]
    return "../" * (here.count("/") + 1 if here else 0) + target


# --- where pages live ----------------------------------------------------------------------------

def model_path(model: str) -> str:
    return f"models/{model}/index.html"


def version_path(model: str, version: str) -> str:
    return f"models/{model}/{version}.html"


def timeline_path(model: str, number: int) -> str:
    return f"models/{model}/timeline-{number}.html"


def versions_path(model: str, number: int) -> str:
    return f"models/{model}/versions-{number}.html"


def dataset_path(name: str) -> str:
    return f"datasets/{name}/index.html"


def dataset_version_path(name: str, version: str) -> str:
    return f"datasets/{name}/{version}.html"


def results_path(slug: str) -> str:
    return f"results/{slug}.html"


# --- times and commits ---------------------------------------------------------------------------

def when(iso: str | None) -> dict[str, str]:
    """A time for ``<time datetime=...>``: the machine form (UTC) and what a reader sees."""
    return dict(_when(iso))


@lru_cache(maxsize=1 << 16)
def _when(iso: str | None) -> tuple[tuple[str, str], ...]:
    moment = utc(iso)
    if moment is None:
        return (("iso", ""), ("text", clip(iso or "unknown", "name")))
    return (("iso", moment.strftime("%Y-%m-%dT%H:%M:%SZ")), ("text", moment.strftime("%Y-%m-%d %H:%M UTC")))


def person(author: str | None) -> str:
    """Who, without the e-mail address (``Name <mail>`` -> ``Name``)."""
    if not author:
        return "unknown"
    name = author.split("<", 1)[0].strip() if "<" in author else author.strip()
    return clip(name or author, "name")


class Links:
    """Links to GitHub, when gitops.yaml names the repository (else None everywhere)."""

    def __init__(self, inputs: SiteInputs) -> None:
        self.github = inputs.github

    def commit(self, sha: str | None) -> str | None:
        if not self.github or not sha or not _is_sha(sha):
            return None
        return f"https://github.com/{self.github}/commit/{sha}"

    def pull(self, number: int | None) -> str | None:
        return f"https://github.com/{self.github}/pull/{number}" if self.github and number else None

    def file(self, path: str, commit: Commit | None) -> str | None:
        """A file as committed at ``commit`` (its last change, so the link, and the page, stay the
        same until the file changes); ``path`` is ours: the registry layout or a file git listed."""
        if not self.github or commit is None:
            return None
        from urllib.parse import quote

        return f"https://github.com/{self.github}/blob/{commit.sha}/{quote(path)}"

    def repo(self) -> str | None:
        return f"https://github.com/{self.github}" if self.github else None


_SHA = re.compile(r"[0-9a-f]{7,64}")


def _is_sha(text: str) -> bool:
    return _SHA.fullmatch(text) is not None


def commit_view(commit: Commit | None, links: Links) -> dict[str, Any] | None:
    """A commit as a page shows it: short id (linked to GitHub when known), who, when, subject."""
    if commit is None:
        return None
    return {"sha": commit.sha, "short": commit.sha[:10], "url": links.commit(commit.sha),
            "author": person(commit.author), "when": when(commit.date), "subject": clip(commit.subject)}


def source_commit(sha: str | None, links: Links) -> dict[str, Any] | None:
    """A commit named by a record (a version's ``commit``): its id, linked when it looks like one."""
    if not sha:
        return None
    text = clip(sha, "name")
    return {"short": text[:10] if _is_sha(text) else text, "url": links.commit(text)}


def dataset_ref(text: str | None, inputs: SiteInputs) -> tuple[str, str] | None:
    """(data set, version) when ``text`` (``reviews@v2``) names a data set version in the registry."""
    parsed = refs.maybe_ref(text, "data set", require_ref=True)
    if parsed is None:
        return None
    name, version = parsed.name, str(parsed.ref)
    dataset = inputs.registry.datasets.get(name)
    if dataset is None or not refs.is_version(version) or version not in dataset.versions:
        return None
    return name, version


def model_ref(text: str | None, inputs: SiteInputs) -> tuple[str, str] | None:
    """(model, version) when ``text`` (``review-autocomplete@v1``) names a version in the registry."""
    parsed = refs.maybe_ref(text, require_ref=True)
    if parsed is None:
        return None
    name, ref = parsed.name, str(parsed.ref)
    model = inputs.registry.models.get(name)
    if model is None:
        return None
    if ref in model.versions:
        return name, ref
    alias = model.aliases.get(ref)
    return (name, alias.version) if alias is not None and alias.version in model.versions else None


def number(value: Any) -> str:
    """A metric for a table cell: 4 significant digits, thousands separated; n/a when missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    if value != value or value in (float("inf"), float("-inf")):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
