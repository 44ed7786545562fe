"""``gitops ingest --pr`` and ``gitops train --pr``: for a protected main, data and models arrive by
pull request (a branch made in a private worktree, pushed with its DVC data, the PR opened against
the GitHub emulator), the user's work tree never moves, and a try that cannot succeed leaves nothing.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops import api, yamlio
from gitops.ml.corpus import write_batches
from tests.conftest import git_state, run_gitops
from tests.emulator import Emulator

REPO = "acme/models"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@dataclass
class Team:
    work: Path
    origin: Path
    remote: Path
    em: Emulator
    batches: list[Path]
    tokens: dict[str, str]

    def pull(self, branch: str):  # untyped: the emulator's Pull
        (pull,) = [p for p in self.em.pulls.values() if p.head == branch]
        return pull

    def files(self, branch: str) -> set[str]:
        return {f["filename"] for f in self.em.changed_files(self.pull(branch))}

    def merge(self, branch: str) -> None:
        """What GitHub's merge button does to main (a fast-forward here), then the clone pulls it."""
        git(self.origin, "update-ref", "refs/heads/main", git(self.origin, "rev-parse", branch))
        git(self.work, "pull", "-q", "--ff-only", "origin", "main")

    def missing_on_remote(self, md5: str) -> list[str]:
        """What of the DVC directory ``md5`` the local remote lacks."""
        def obj(h: str) -> Path:
            return self.remote / "files" / "md5" / h[:2] / h[2:]
        if not obj(md5).is_file():
            return [md5]
        return [e["relpath"] for e in json.loads(obj(md5).read_text()) if not obj(e["md5"]).is_file()]


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repository made by ``gitops init`` (github.repo acme/models in gitops.yaml, a local DVC
    remote), the data set ``reviews``, a bare origin it was pushed to, and the emulator serving it.
    GITHUB_TOKEN is the bot's; GITHUB_REPOSITORY is unset: the repository comes from gitops.yaml."""
    work, origin, remote = tmp_path / "work", tmp_path / "origin.git", tmp_path / "dvc-remote"
    api.init(work, remote=str(remote), repo=REPO)
    api.create_dataset(api.Workspace(work), "reviews", {"id": "string", "product": "string", "rating": "int",
                                                       "text": "string"}, "text", ["id"])
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "-u", "origin", "main")
    em = Emulator(origin, REPO)
    url = em.start()
    tokens = {"gitops-bot": em.add_user("gitops-bot", type="Bot", permission="write"),
              "dave": em.add_user("dave", permission="read")}
    monkeypatch.setenv("GITHUB_API_URL", url)
    monkeypatch.setenv("GITHUB_TOKEN", tokens["gitops-bot"])
    monkeypatch.setenv("GITOPS_GITHUB_RETRIES", "0")
    try:
        yield Team(work, origin, remote, em, write_batches(tmp_path / "batches", n=2, rows_per_batch=60), tokens)
    finally:
        em.stop()
    assert em.violations == [], "GitHub contract violations:\n" + "\n".join(em.violations)


def worktrees(work: Path) -> int:
    return len(git(work, "worktree", "list").splitlines())


def test_ingest_by_pull_request_leaves_main_and_the_work_tree_alone(team: Team) -> None:
    before = git_state(team.work)
    res = run_gitops("ingest", str(team.batches[0]), "--dataset", "reviews", "--pr", "-C", str(team.work))
    assert res.exit_code == 0, res.stderr
    branch = "gitops/ingest-reviews-v1"
    pull = team.pull(branch)
    assert f"Opened pull request #{pull.number} ({branch} into main)" in res.stdout
    assert (pull.base, pull.author, pull.title) == ("main", "gitops-bot", "Data: reviews v1 (+60 rows)")
    assert team.files(branch) == {"data.dvc", "registry/datasets/reviews.yaml", ".gitignore"}
    # the user's branch, HEAD and files are as they were; origin's main too; the worktree is gone
    assert git_state(team.work) == before and not (team.work / "data.dvc").exists()
    assert git(team.origin, "rev-parse", "main") == before[0].strip() and worktrees(team.work) == 1
    pointer = yamlio.loads(git(team.origin, "show", f"{branch}:data.dvc"), "data.dvc")
    assert team.missing_on_remote(pointer["outs"][0]["md5"]) == []  # the data went to the DVC remote first

    # merged, then a second batch that overlaps the first: deduplicated against v1 in the worktree
    team.merge(branch)
    overlap = team.batches[1].parent / "overlap.csv"
    lines = team.batches[0].read_text().splitlines()
    overlap.write_text("\n".join(lines[:11] + team.batches[1].read_text().splitlines()[1:]) + "\n")
    res = run_gitops("ingest", str(overlap), "--dataset", "reviews", "--pr", "-C", str(team.work))
    assert res.exit_code == 0, res.stderr
    assert "Dropped 10 duplicate rows." in res.stderr and "Reviews v2: +60 rows" in res.stdout
    assert team.pull("gitops/ingest-reviews-v2").title == "Data: reviews v2 (+60 rows)"


def test_a_proposal_that_cannot_be_opened_fails_first_and_leaves_nothing(team: Team, monkeypatch) -> None:
    """Each of these is one sentence and exit 1 before anything is made: no branch here or on
    origin, no worktree, no pull request, nothing on the DVC remote, the work tree untouched."""
    git(team.work, "branch", "gitops/ingest-reviews-v9")  # someone's branch, not in the way of v1
    before = git_state(team.work)
    cases = [
        ({"--github-repo": "acme/nope"}, {}, "GitHub found nothing while reading repository acme/nope (404"),
        ({}, {"GITHUB_TOKEN": "not-a-token"}, "rejected the token while reading repository acme/models"),
        ({}, {"GITHUB_TOKEN": team.tokens["dave"]}, "the token cannot push to acme/models"),
        ({}, {"GITHUB_TOKEN": None}, "GITHUB_TOKEN is not set"),
        ({"--github-repo": "nope"}, {}, "--github-repo 'nope' must look like OWNER/NAME"),
    ]
    for options, env, message in cases:
        with monkeypatch.context() as mp:
            for key, value in env.items():
                mp.delenv(key) if value is None else mp.setenv(key, value)
            args = [a for pair in options.items() for a in pair]
            res = run_gitops("ingest", str(team.batches[0]), "--dataset", "reviews", "--pr", *args,
                             "-C", str(team.work))
        assert res.exit_code == 1 and message in res.stderr, (options, env, res.stderr)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    git(team.work, "branch", "gitops/ingest-reviews-v1")  # a branch of an earlier proposal
    res = run_gitops("ingest", str(team.batches[0]), "--dataset", "reviews", "--pr", "-C", str(team.work))
    assert res.exit_code == 1 and "branch gitops/ingest-reviews-v1 already exists" in res.stderr
    git(team.work, "branch", "-D", "gitops/ingest-reviews-v1")
    git(team.work, "remote", "remove", "origin")
    res = run_gitops("ingest", str(team.batches[0]), "--dataset", "reviews", "--pr", "-C", str(team.work))
    assert res.exit_code == 1 and "cannot --pr: git has no remote 'origin'" in res.stderr

    assert git_state(team.work) == before and worktrees(team.work) == 1
    assert git(team.work, "branch", "--list", "gitops/*").split() == ["gitops/ingest-reviews-v9"]
    assert git(team.origin, "for-each-ref", "--format=%(refname:short)", "refs/heads") == "main"
    assert team.em.pulls == {}
    assert not any(p.is_file() for p in team.remote.rglob("*"))


def test_a_worktree_left_by_a_killed_proposal_is_cleared(team: Team) -> None:
    stale = team.work / ".git" / "gitops" / "proposals" / "gitops-ingest-reviews-v1"
    git(team.work, "worktree", "add", "-q", "--detach", str(stale), "HEAD")
    (stale / "half-written").write_text("left by a SIGKILL")
    res = run_gitops("ingest", str(team.batches[0]), "--dataset", "reviews", "--pr", "-C", str(team.work))
    assert res.exit_code == 0, res.stderr
    assert worktrees(team.work) == 1 and not stale.exists()
    assert team.files("gitops/ingest-reviews-v1") == {"data.dvc", "registry/datasets/reviews.yaml", ".gitignore"}


TRAIN = {"base_model": "gitops/tiny-opt", "dataset": "reviews@latest", "output": {"model": "review"},
         "adapter": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
         "trainer": {"batch_size": 8, "max_length": 32, "eval_steps": 2, "learning_rate": 3e-3, "seed": 7,
                     "max_steps": 2, "epochs": 1}}


@pytest.mark.slow
def test_train_by_pull_request_registers_and_moves_staging_on_its_branch(team: Team) -> None:
    ws = api.Workspace(team.work)
    api.create_model(ws, "review")
    api.ingest(ws, [team.batches[0]], "reviews")
    (team.work / "train.yaml").write_text(yamlio.dumps(TRAIN))
    git(team.work, "commit", "-q", "-am", "train.yaml: two steps on the toy")
    git(team.work, "push", "-q", "origin", "main")

    # a repository that does not exist: refused before a single step is trained
    res = run_gitops("train", str(team.work / "train.yaml"), "--alias", "staging", "--pr", "--github-repo", "acme/nope",
                     "-C", str(team.work))
    assert res.exit_code == 1 and "acme/nope (404" in res.stderr
    assert not (team.work / ".gitops").exists()  # no work directory: training never started

    before = git_state(team.work)
    res = run_gitops("train", str(team.work / "train.yaml"), "--alias", "staging", "--pr", "-C", str(team.work))
    assert res.exit_code == 0, res.stderr
    branch = "gitops/train-review-v1"
    pull = team.pull(branch)
    assert f"Opened pull request #{pull.number} ({branch} into main)" in res.stdout
    assert pull.title == "Train review v1 as staging" and "fine-tuned from `gitops/tiny-opt`" in pull.body
    assert team.files(branch) == {"registry/review/model.yaml", "models/review/v1.dvc", "models/review/.gitignore",
                                  "registry/review/aliases/staging.yaml"}
    assert git_state(team.work) == before and worktrees(team.work) == 1
    assert not any((team.work / ".gitops" / "runs").glob("review-*"))  # registered: the checkpoints are gone
    model = yamlio.loads(git(team.origin, "show", f"{branch}:registry/review/model.yaml"), "model.yaml")
    v1 = model["versions"]["v1"]
    assert v1["dataset"] == "reviews@v1" and v1["commit"] == before[0].strip() and v1["metrics"]["steps"] == 2
    assert team.missing_on_remote(v1["md5"]) == []
    alias = yamlio.loads(git(team.origin, "show", f"{branch}:registry/review/aliases/staging.yaml"), "alias")
    assert alias["version"] == "v1"
