"""Fixtures for the GitHub side: a real origin repository, a clone with a registry, and the emulator.

The emulator serves the bare ``origin`` repository, so ``git push origin`` from the clone is what
GitHub sees (pull request heads, changed files, contents at a ref).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.emulator import Emulator

REPO = "acme/models"
MD5 = "0123456789abcdef0123456789abcdef.dir"
MODEL_YAML = f"""\
name: review
description: review autocomplete
task: text-generation
owners: ['@acme/ml']
protected:
  production: ['@acme/mlops']
versions:
  v1: {{format: hf, path: models/review/v1, md5: {MD5}}}
  v2: {{format: hf, path: models/review/v2, md5: {MD5}}}
  v3: {{format: hf, path: models/review/v3, md5: {MD5}}}
"""
CODEOWNERS = """\
# generated
/.github/CODEOWNERS @acme/mlops
/registry/review/aliases/production.yaml @acme/mlops
"""


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture
def github_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own HOME and git identity; no GitHub variables leak in; PyGithub does not retry 5xx.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("github_env")``.
    """
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("GITHUB_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GITOPS_GITHUB_RETRIES", "0")


@dataclass
class Site:
    """The emulator, its origin repository, a work clone, and the users' tokens."""

    em: Emulator
    url: str
    origin: Path
    work: Path
    tokens: dict[str, str]

    def use(self, monkeypatch: pytest.MonkeyPatch, login: str = "gitops-bot") -> None:
        monkeypatch.setenv("GITHUB_API_URL", self.url)
        monkeypatch.setenv("GITHUB_TOKEN", self.tokens[login])
        monkeypatch.setenv("GITHUB_REPOSITORY", REPO)

    def commit_files(self, branch: str, files: dict[str, str], message: str = "change") -> str:
        """Commit ``files`` on ``branch`` (made from main when new) and push it; return the commit."""
        existing = git(self.work, "branch", "--list", branch)
        git(self.work, "checkout", "-q", branch) if existing else git(self.work, "checkout", "-q", "-b", branch, "main")
        for rel, text in files.items():
            (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.work / rel).write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", branch)
        sha = git(self.work, "rev-parse", "HEAD")
        git(self.work, "checkout", "-q", "main")
        return sha

    def pull_request(self, branch: str, files: dict[str, str], author: str) -> int:
        self.commit_files(branch, files)
        return self.em.open_pull(branch, "main", f"Change {branch}", author)

    def review(self, login: str, number: int, event: str) -> None:
        """A person's review through PyGithub (validated like every other call)."""
        import github

        gh = github.Github(base_url=self.url, auth=github.Auth.Token(self.tokens[login]), retry=0,
                           seconds_between_requests=0, seconds_between_writes=0)
        pr = gh.get_repo(REPO).get_pull(number)
        pr.create_review(body=f"{event} from {login}", event=event)


def _seed_repo(tmp_path: Path) -> tuple[Path, Path]:
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(work))
    files = {"registry/review/model.yaml": MODEL_YAML, ".github/CODEOWNERS": CODEOWNERS,
             "registry/review/aliases/production.yaml": "version: v1\n",
             "registry/review/aliases/staging.yaml": "version: v2\n"}
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git(work, "checkout", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "registry")
    git(work, "push", "-q", "origin", "main")
    return origin, work


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A running emulator over a fresh origin; fails the test if any call broke GitHub's contract."""
    origin, work = _seed_repo(tmp_path)
    em = Emulator(origin, REPO)
    url = em.start()
    tokens = {
        "gitops-bot": em.add_user("gitops-bot", type="Bot", permission="write"),
        "alice": em.add_user("alice", permission="admin"),   # in @acme/mlops
        "bob": em.add_user("bob", permission="write"),       # not a code owner
        "carol": em.add_user("carol", permission="write"),   # in @acme/mlops, authors PRs
        "dave": em.add_user("dave", permission="read"),      # in @acme/mlops, read only
        # GITOPS_READ_ORG_TOKEN: a machine user's PAT with read:org. The bot's token is Actions'
        # GITHUB_TOKEN, which cannot read team membership (the emulator answers 403 as GitHub does).
        "org-reader": em.add_user("org-reader", permission="read", scopes=("repo", "read:org")),
    }
    em.add_team("acme", "mlops", ["alice", "carol", "dave"])
    try:
        yield Site(em, url, origin, work, tokens)
    finally:
        em.stop()
    assert em.violations == [], "GitHub contract violations:\n" + "\n".join(em.violations)
