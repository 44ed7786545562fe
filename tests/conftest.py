"""Shared fixtures: an isolated HOME and git identity, real GitOps repos with a local DVC remote."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

# The fixture modules, registered once for every test module (a test asks for a fixture by name; it
# imports only the plain helpers it calls). Two fixtures there are opt-in per module, not autouse:
# deploy_fixtures' `_isolated_git` and github_fixtures' `github_env` (pytest.mark.usefixtures).
pytest_plugins = [
    "tests.deploy_fixtures",
    "tests.eval_fixtures",
    "tests.github_fixtures",
    "tests.ml_fixtures",
    "tests.prompt_fixtures",
    "tests.serve_fixtures",
    "tests.train_fixtures",
]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and git config: nothing of the developer's machine leaks in."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
                         "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # one embedded base model per test session (built in ~15 s), shared with tests/ml_fixtures.py
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.environ.get("GITOPS_TEST_CACHE_DIR")
                       or str(tmp_path_factory.getbasetemp() / "gitops-cache"))
    for key in ("GITHUB_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(key, raising=False)
    return home


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run_gitops(*args: str, cwd: Path | None = None) -> Result:
    """Run the real CLI in-process (fast) and capture what a user sees."""
    from gitops.cli import main

    runner = CliRunner()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        res = runner.invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
    return Result(res.exit_code, res.stdout, res.stderr)


def run_gitops_process(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m gitops`` as a separate process (what a user's shell does)."""
    return subprocess.run([sys.executable, "-m", "gitops", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


_TEMPLATE: dict[str, Path] = {}  # one `gitops init` per test process, copied for every test


@pytest.fixture
def gitops_repo(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh GitOps repo as `gitops init` makes it, with a local DVC remote beside it.

    ``gitops init`` runs once per test process (dvc's init alone costs 1 to 3 s of CPU, and some
    200 tests start here); each test gets a copy whose remote URL names its own remote, committed
    as init commits it. ``init`` itself is tested on real runs (test_registry_e2e, test_scaffold_team)."""
    import shutil

    from gitops import api

    if "root" not in _TEMPLATE:
        base = tmp_path_factory.mktemp("init-template")
        _TEMPLATE.update(root=api.init(base / "repo", remote=str(base / "remote")).root, remote=base / "remote")
    root = tmp_path / "repo"
    shutil.copytree(_TEMPLATE["root"], root, symlinks=True)
    config = root / ".dvc" / "config"
    text = config.read_text(encoding="utf-8")
    assert str(_TEMPLATE["remote"]) in text, text
    config.write_text(text.replace(str(_TEMPLATE["remote"]), str(tmp_path / "remote")), encoding="utf-8")
    subprocess.run(["git", "commit", "-qa", "--amend", "--no-edit"], cwd=root, check=True, capture_output=True)
    return root


@pytest.fixture
def weights(tmp_path: Path):
    """Factory: a small weights directory with distinct contents."""
    counter = {"n": 0}

    def make(content: str | None = None) -> Path:
        counter["n"] += 1
        d = tmp_path / f"weights-{counter['n']}"
        d.mkdir()
        (d / "model.safetensors").write_text(content or f"weights {counter['n']}")
        (d / "config.json").write_text('{"model_type": "opt"}')
        return d

    return make


def git_state(root: Path) -> tuple[str, str]:
    """HEAD and the porcelain status (untracked files included): equal before and after means untouched."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                            capture_output=True, text=True).stdout
    return head, status
