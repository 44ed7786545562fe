"""One evaluation comment per pull request that updates itself, and the Actions step summary."""

from __future__ import annotations

import os
from pathlib import Path

from gitops.adapters.github import GitHub
from gitops.github.repository import connect_to


def _first_line(text: str) -> str:
    return text.lstrip().split("\n", 1)[0].strip()


def post_sticky_comment(repo: GitHub | str | None, pr_number: int, marker: str, body: str,
                        directory: Path | str | None = None) -> tuple[str, bool]:
    """Create or update the comment that starts with ``marker`` on pull request ``pr_number``.

    Only a comment written by the same account as the token (``GET /user``) is updated: a person
    who pastes the marker into their own comment must never have it overwritten. The marker (e.g.
    ``<!-- gitops-report model=m alias=staging -->``) becomes the body's first line when it is not
    already. Returns the comment's URL and whether it was created (False: updated). A ``repo`` not
    given is github.repo of the gitops.yaml in ``directory``'s repository, then ``$GITHUB_REPOSITORY``.
    """
    gh = repo if isinstance(repo, GitHub) else connect_to(repo, directory)
    marker = marker.strip()
    if _first_line(body) != marker:
        body = f"{marker}\n{body}"
    me = gh.login()
    mine = [c for c in gh.comments(pr_number) if c.author == me and _first_line(c.body) == marker]
    if mine:
        # The oldest one is the sticky comment; PRs keep their first evaluation comment's place.
        comment = gh.edit_comment(mine[0].id, body)
        return comment.url, False
    comment = gh.create_comment(pr_number, body)
    return comment.url, True


def append_step_summary(text: str) -> Path | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` (the job's summary page) when Actions set it.

    Returns the file written, or None outside Actions.
    """
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return path


def post_report(markdown: str, pr_number: int, repo: GitHub | str | None = None,
                directory: Path | str | None = None) -> tuple[str, bool]:
    """Post a rendered report (its first line is its marker) as the PR's sticky comment, and add it
    to the Actions step summary. Returns the comment's URL and whether it was created."""
    marker = markdown.split("\n", 1)[0]
    url, created = post_sticky_comment(repo, pr_number, marker, markdown, directory)
    append_step_summary(markdown)
    return url, created
