"""The pull-request loop, offline: a GitOps repo with real weights, its GitHub origin, the emulator.

``build_loop(tmp)`` makes what GitHub would hold for the demo model (no pytest needed, so
``bench/pr_loop.py`` builds the same thing):

- a repository made by ``gitops init`` whose DVC remote is a local directory (reachable from an
  ``act`` job in host mode), with the embedded default base model registered as ``review@v1``
  (``production``) and its CTranslate2 int8 conversion as ``review@v2``; the demo reviews corpus
  ingested as the data set ``reviews`` when the data commands exist;
- a bare ``origin`` (what the emulator serves) and two pushed branches: ``move-staging`` (points
  ``staging`` at v2: PR #1 by carol) and ``promote-production`` (points ``production`` at v2: PR #2
  by bob, protected by ``@acme/mlops``);
- the work clone's ``origin`` fetch URL is ``https://github.com/acme/models.git`` (act takes
  ``github.repository`` from it) and its push URL is the bare origin.
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.emulator import Emulator

REPO = "acme/models"
MODEL = "review"
STAGING_BRANCH, PRODUCTION_BRANCH = "move-staging", "promote-production"
IDENTITY = "[user]\n\tname = Ada Tester\n\temail = ada@example.com\n[init]\n\tdefaultBranch = main\n" \
           "[commit]\n\tgpgsign = false\n"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


@dataclass
class Loop:
    """Everything one pull-request loop needs; ``pulls`` maps a branch to its PR number."""

    work: Path
    origin: Path
    dvc_remote: Path
    em: Emulator
    url: str
    tokens: dict[str, str]
    base_sha: str
    pulls: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def head_of(self, branch: str) -> str:
        return git(self.origin, "rev-parse", branch)

    def checkout(self, branch: str) -> str:
        """Check the work clone out at ``branch`` (act runs what is checked out); return its commit."""
        git(self.work, "checkout", "-q", branch)
        return git(self.work, "rev-parse", "HEAD")

    def bot_comments(self, number: int) -> list:
        return [c for c in self.em.comments.values() if c.issue == number and c.author == "gitops-bot"]


def isolated_environ(home: Path, cache_dir: Path) -> dict[str, str]:
    """HOME, git identity and caches for building the loop outside pytest's per-test isolation."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(IDENTITY)
    return {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
            "DVC_NO_ANALYTICS": "1", "XDG_CONFIG_HOME": str(home / ".config"), "GITOPS_CACHE_DIR": str(cache_dir)}


def _registry(work: Path) -> dict[str, float]:
    """v1 = the embedded default (production), v2 = its ct2 int8 conversion; weights pushed to DVC.

    Runs with ``work`` as the working directory: DVC resolves stage paths against it."""
    import time

    from gitops import api
    from gitops.adapters.dvc import Dvc
    from gitops.ml.basemodel import default_base_model

    t0 = time.perf_counter()
    base = default_base_model()
    t1 = time.perf_counter()
    dataset = _dataset(work)
    ws = api.Workspace(work)
    api.create_model(ws, MODEL, description="review autocomplete", protect={"production": ["@acme/mlops"]})
    api.register(ws, MODEL, base, fmt="hf", base_model="gitops/tiny-opt", dataset=dataset,
                 note="the embedded default")
    api.set_alias(ws, MODEL, "production", "v1")
    api.convert(ws, f"{MODEL}@v1", to="ct2", quantization="int8")
    Dvc(work).push()
    return {"base model": t1 - t0, "registry": time.perf_counter() - t1}


def _dataset(work: Path) -> str | None:
    """The demo reviews corpus (300 rows) as the data set ``reviews``."""
    from gitops import api
    from gitops.ml.corpus import write_batches

    columns = {"id": "string", "product": "string", "rating": "int", "text": "string"}
    api.create_dataset(api.Workspace(work), "reviews", columns, "text", ["id"])
    api.ingest(api.Workspace(work), write_batches(work.parent / "batches", n=1, rows_per_batch=300), "reviews")
    return "reviews@v1"


def _branch(work: Path, branch: str, alias: str, version: str) -> None:
    from gitops import api

    git(work, "checkout", "-q", "-b", branch, "main")
    api.set_alias(api.Workspace(work), MODEL, alias, version, note=f"{alias} -> {version}")
    git(work, "push", "-q", "origin", branch)
    git(work, "checkout", "-q", "main")


def build_loop(tmp: Path) -> Loop:
    """Build the repo, origin and branches, start the emulator with users, team and two PRs."""
    from gitops import api

    work, origin, dvc_remote = tmp / "work", tmp / "origin.git", tmp / "dvc-remote"
    api.init(work, remote=str(dvc_remote), repo=REPO)
    with contextlib.chdir(work):
        timings = _registry(work)
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    git(work, "remote", "add", "origin", f"https://github.com/{REPO}.git")
    git(work, "remote", "set-url", "--push", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")  # also sets refs/remotes/origin/main
    base_sha = git(work, "rev-parse", "HEAD")
    _branch(work, STAGING_BRANCH, "staging", "v2")
    _branch(work, PRODUCTION_BRANCH, "production", "v2")

    em = Emulator(origin, REPO)
    url = em.start()
    tokens = {"gitops-bot": em.add_user("gitops-bot", type="Bot", permission="write"),
              "alice": em.add_user("alice", permission="admin"),   # @acme/mlops: may approve production
              "bob": em.add_user("bob", permission="write"),       # not a code owner
              "carol": em.add_user("carol", permission="write"),   # @acme/mlops
              "dave": em.add_user("dave", permission="write"),     # not a code owner
              # GITOPS_READ_ORG_TOKEN: Actions' GITHUB_TOKEN cannot read team membership
              "org-reader": em.add_user("org-reader", permission="read", scopes=("repo", "read:org"))}
    em.add_team("acme", "mlops", ["alice", "carol"])
    loop = Loop(work, origin, dvc_remote, em, url, tokens, base_sha, timings=timings)
    loop.pulls[STAGING_BRANCH] = em.open_pull(STAGING_BRANCH, "main", "Move staging to v2", "carol")
    loop.pulls[PRODUCTION_BRANCH] = em.open_pull(PRODUCTION_BRANCH, "main", "Promote v2 to production", "bob")
    return loop


def act_env(loop: Loop) -> dict[str, str]:
    """``--env`` for act: gitops and PyGithub talk to the emulator; no retries on its 500s."""
    return {"GITHUB_API_URL": loop.url, "GITOPS_GITHUB_RETRIES": "0"}


def act_secrets(loop: Loop) -> dict[str, str]:
    """act turns the secret GITHUB_TOKEN into ``github.token``: the bot's token on the emulator (an
    installation token, which cannot read team membership); registry-check's approvals step uses
    GITOPS_READ_ORG_TOKEN, a PAT with read:org, as a team would configure it."""
    return {"GITHUB_TOKEN": loop.tokens["gitops-bot"], "GITOPS_READ_ORG_TOKEN": loop.tokens["org-reader"]}

