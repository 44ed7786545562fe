"""Opening a pull request from a branch the command made: everything checked before the branch
exists, and nothing left behind when opening fails.

A command that ends in a pull request (``gitops promote --pr``) first calls :func:`pull_target`,
which checks the git remote, the GitHub repository's name (:mod:`gitops.github.repository`), the
token, and GitHub's answer that the repository exists and the token may push to it; only then does it
create its branch, and :func:`open_pull` pushes it and opens the pull request, deleting the branch
(remote and local) when either fails, so a re-run starts from where the first began.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.adapters.github import GitHub, PullInfo
from gitops.core.workspace import Workspace
from gitops.errors import GitopsError, RepoStateError
from gitops.github.repository import connect_to


@dataclass
class PullTarget:
    """Where a pull request goes: the GitHub client (repository and token checked), the git remote
    the branch is pushed to, the branch it merges into."""

    gh: GitHub
    remote: str
    base: str

    @property
    def repo(self) -> str:
        return self.gh.repo_name


def pull_target(ws: Workspace, github_repo: str | None = None, base: str = "main",
                remote: str = "origin") -> PullTarget:
    """Check everything opening a pull request needs, before anything is created."""
    if remote not in ws.git.remotes():
        raise RepoStateError(f"the repository has no git remote '{remote}' to push the pull request's branch to "
                             f"(git remote add {remote} URL)")
    gh = connect_to(github_repo, ws.root)  # the name (option, gitops.yaml, environment) and the token
    gh.check_push_access()                 # it exists and the token may push to it
    return PullTarget(gh, remote, base)


def open_pull(ws: Workspace, target: PullTarget, branch: str, title: str, body: str) -> PullInfo:
    """Push ``branch`` to the target's remote and open its pull request into the target's base.

    When the push or the pull request fails (or is interrupted), the branch is deleted on the
    remote (if it got there) and locally, and the error is raised: a failed try leaves nothing."""
    pushed = False
    try:
        ws.git.push(target.remote, f"refs/heads/{branch}:refs/heads/{branch}")
        pushed = True
        return target.gh.create_pull(title, body, head=branch, base=target.base)
    except BaseException as exc:
        leftover = _remove_branch(ws, target.remote, branch, pushed)
        if leftover and isinstance(exc, GitopsError):
            exc.message += f"; the branch could not be removed, delete it before a re-run: {leftover}"
        raise


def _remove_branch(ws: Workspace, remote: str, branch: str, pushed: bool) -> str | None:
    """Delete ``branch`` (on ``remote`` too when it was pushed); the command left to run when that failed."""
    failed = []
    if pushed:
        try:
            ws.git.delete_remote_branch(remote, branch)
        except GitopsError:
            failed.append(f"git push {remote} --delete {branch}")
    try:
        ws.git.delete_branch(branch)
    except GitopsError:
        failed.append(f"git branch -D {branch}")
    return " and ".join(failed) or None
