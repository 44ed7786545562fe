"""A GitOps repository for data tests, made without ``gitops init`` (git + DVC with a local remote)."""

from __future__ import annotations

import os
from pathlib import Path

from gitops.adapters import dvc as dvc_adapter
from gitops.adapters import git

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Data Tester", "GIT_AUTHOR_EMAIL": "data@example.com",
    "GIT_COMMITTER_NAME": "Data Tester", "GIT_COMMITTER_EMAIL": "data@example.com",
}


def make_repo(root: Path, remote: Path | None = None) -> Path:
    """``git init -b main`` + identity + ``dvc init`` with ``remote`` as default DVC remote, committed."""
    root.mkdir(parents=True, exist_ok=True)
    git.run(root, "init", "-q", "-b", "main")
    git.run(root, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    git.run(root, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    git.run(root, "config", "commit.gpgsign", "false")
    remote = remote or root.parent / f"{root.name}-dvc-remote"
    remote.mkdir(parents=True, exist_ok=True)
    dvc_adapter.init(root, remote_url=str(remote))
    git.run(root, "add", "-A")
    git.commit(root, "init: git + dvc")
    return root


def isolate_home(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Keep the user's git config and DVC site cache out of the test."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m gitops`` in a subprocess run from this worktree."""
    repo = Path(__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": str(repo), "DVC_NO_ANALYTICS": "1"}
