"""Which GitHub repository a command talks to, decided the same way by every GitHub command.

``--github-repo OWNER/NAME`` when given; else ``github.repo`` of the GitOps repository's
``gitops.yaml`` (``gitops init --github-repo`` writes it); else ``$GITHUB_REPOSITORY`` (set by
GitHub Actions). When gitops.yaml's name is used inside a workflow whose ``$GITHUB_REPOSITORY``
names another repository, the command refuses: a stale name after a rename would talk to the wrong
repository, and a pull request's own gitops.yaml must never choose which repository a check reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gitops.adapters import git as git_adapter
from gitops.adapters.github import NO_REPOSITORY, GitHub, connect, repo_problem
from gitops.core import settings as settings_module
from gitops.errors import GithubError, RepoStateError, shown

ENV = "GITHUB_REPOSITORY"


def choose(given: str | None, configured: str | None, env: Mapping[str, str]) -> str:
    """The repository from the option, the setting and the environment, in that order (see the
    module's docstring); a :class:`GithubError` naming all three when none gives one."""
    from_env = env.get(ENV) or None
    if given is not None:
        if problem := repo_problem(given):
            raise GithubError(f"--github-repo '{shown(given)}' {problem}")
        return given
    if configured:
        if from_env and from_env.lower() != configured.lower():
            raise GithubError(f"github.repo in {settings_module.SETTINGS_FILE} is '{shown(configured)}' but "
                              f"{ENV} is '{shown(from_env)}' (the repository this workflow runs in): fix "
                              f"{settings_module.SETTINGS_FILE}, or pass --github-repo OWNER/NAME")
        return configured  # checked when gitops.yaml was read
    if from_env:
        if problem := repo_problem(from_env):
            raise GithubError(f"{ENV} '{shown(from_env)}' {problem}")
        return from_env
    raise GithubError(NO_REPOSITORY)


def configured_repo(directory: Path | str) -> str | None:
    """``github.repo`` of the gitops.yaml at the top of the git work tree holding ``directory``;
    None outside a work tree (a workflow job that only downloaded results) or when it names none."""
    try:
        root = git_adapter.find_root(directory)
    except RepoStateError:
        return None
    return settings_module.read(root).repo


def resolve(given: str | None, directory: Path | str | None, env: Mapping[str, str] | None = None) -> str:
    """The GitHub repository for a command run in ``directory`` (None: read no gitops.yaml). The
    file is read only when ``given`` is None, so a broken gitops.yaml does not stop a command that
    names its repository."""
    env = os.environ if env is None else env
    configured = configured_repo(directory) if given is None and directory is not None else None
    return choose(given, configured, env)


def connect_to(given: str | None, directory: Path | str | None) -> GitHub:
    """A client for the repository :func:`resolve` picks, with the environment's token."""
    return connect(resolve(given, directory))
