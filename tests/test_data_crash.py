"""An ingest killed at any moment (SIGKILL) leaves the repository as before or as after, never between.

Each round runs ``python -m gitops ingest`` in its own process group, kills the group (the Python
process and any git child, as a cancelled CI job or a power cut would) after a random delay, runs
recovery, and checks the repository is exactly the old state or exactly the new one. A final re-run
of every file must complete with the right row count.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops import api
from gitops.adapters import git
from gitops.core import journal
from gitops.core.workspace import Workspace
from gitops.data import batches
from tests.crash_fixtures import gitops_cmd, left_locks
from tests.crash_fixtures import run_and_kill as run_and_kill_cmd
from tests.data_fixtures import isolate_home, make_repo, subprocess_env

ROUNDS = 25
ROWS = 4


def snapshot(root: Path) -> dict:
    """HEAD, the data set file, data.dvc and every file under data/ (with content hashes)."""
    data = {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted((root / "data").rglob("*")) if p.is_file()} if (root / "data").exists() else {}
    return {"head": git.head(root), "yaml": (root / "registry/datasets/reviews.yaml").read_text(),
            "pointer": (root / "data.dvc").read_text(), "data": data, "dirty": git.dirty_paths(root)}


def check_before_or_after(root: Path, before: dict, rows_before: int) -> bool:
    """True when the repo is in the 'after' state, False for 'before'; fails the test otherwise."""
    now = snapshot(root)
    assert now["dirty"] == [], now["dirty"]
    if now["head"] == before["head"]:
        assert now == before
        return False
    assert git.run(root, "rev-parse", "HEAD^").strip() == before["head"]
    committed = git.read_blobs(root, [f"HEAD:{p}" for p in ("registry/datasets/reviews.yaml", "data.dvc")])
    assert now["yaml"] == committed["HEAD:registry/datasets/reviews.yaml"]
    assert now["pointer"] == committed["HEAD:data.dvc"]
    latest = Workspace(root).dataset("reviews").latest()
    from gitops.data import keys

    added = set(now["data"]) - set(before["data"])
    assert added == {latest.batch, keys.shard_path(latest.batch)}
    assert {k: now["data"][k] for k in before["data"]} == before["data"]
    assert len(batches.read_rows(Workspace(root), "reviews")) == rows_before + ROWS
    return True


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_home(monkeypatch, tmp_path)
    root = make_repo(tmp_path / "repo")
    api.create_dataset(Workspace(root), "reviews", {"id": "string", "text": "string", "rating": "int"}, "text", ["id"])
    return root


def batch_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"batch{n:02d}.jsonl"
    path.write_text("".join(json.dumps({"id": f"k{n}-{i}", "text": f"text {n} {i}", "rating": i + 1}) + "\n"
                            for i in range(ROWS)))
    return path


JOURNAL = ".git/gitops/journal.json"


def run_and_kill(root: Path, src: Path, delay: float) -> int | None:
    return run_and_kill_cmd(root, gitops_cmd("ingest", str(src), "--dataset", "reviews"), delay)


def recover(root: Path) -> str | None:
    """What the next committing command does first: settle what a killed one left."""
    with Workspace(root).writing("recover") as outcome:
        return outcome


def test_sigkill_during_ingest_leaves_before_or_after(repo: Path, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("GITOPS_CRASH_SEED", "7")))
    api.ingest(Workspace(repo), [batch_file(tmp_path, 0)], "reviews")  # data.dvc exists: the incremental path runs
    start = time.monotonic()
    proc_start = time.monotonic()
    assert run_and_kill(repo, batch_file(tmp_path, 1), 60) == 0  # an uninterrupted run, to time one
    full = time.monotonic() - proc_start
    rows, outcomes = 2 * ROWS, {"rounds": 0, "killed": 0, "before": 0, "after": 0, "recovered": 0, "left git lock": 0}
    scale = full  # follows the load, as in test_register_crash: longer after an early kill, shorter after a late one
    for n in range(2, ROUNDS + 2):
        before = snapshot(repo)
        # bias towards the end of the run, where files are written and the commit happens
        delay = scale * (rng.uniform(0.1, 1.1) if rng.random() < 0.4 else rng.uniform(0.55, 1.05))
        outcomes["rounds"] += 1
        outcomes["killed"] += run_and_kill(repo, batch_file(tmp_path, n), delay) is None
        outcomes["left git lock"] += bool(left_locks(repo))
        recovered = recover(repo)
        outcomes["recovered"] += bool(recovered)
        after = check_before_or_after(repo, before, rows)
        rows += ROWS if after else 0
        outcomes["after" if after else "before"] += 1
        early = not after and not recovered
        scale = min(scale * 1.15, full * 4) if early else max(scale * 0.95, full * 0.5)
        if time.monotonic() - start > 50:
            break
    # a final run of everything completes and holds every row exactly once
    files = [batch_file(tmp_path, n) for n in range(ROUNDS + 2)]
    out = subprocess.run([sys.executable, "-m", "gitops", "ingest", *map(str, files), "--dataset", "reviews"],
                         cwd=repo, env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = [r["id"] for r in batches.read_rows(Workspace(repo), "reviews")]
    assert len(ids) == len(set(ids)) == (ROUNDS + 2) * ROWS
    assert git.dirty_paths(repo) == [] and not (repo / JOURNAL).exists()
    print(outcomes, f"(one uninterrupted run: {full:.1f} s, loop: {time.monotonic() - start:.0f} s)")
    # kills did land before the commit (whether one also landed inside the commit's few milliseconds,
    # leaving a journal to recover, depends on the load; the tests below kill at each point on purpose)
    assert outcomes["killed"] > 0 and outcomes["before"] > 0, outcomes


class Killed(BaseException):
    """Stands for SIGKILL at a chosen point (BaseException: nothing may catch and clean up)."""


def test_first_ingest_killed_before_commit_rolls_back(repo: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot_light(repo)

    def die(*_args: object, **_kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(git, "commit", die)  # everything is written and staged; the commit never happens
    with pytest.raises(Killed):
        api.ingest(Workspace(repo), [batch_file(tmp_path, 0)], "reviews")
    assert (repo / "data.dvc").exists() and (repo / JOURNAL).exists()
    monkeypatch.undo()
    assert recover(repo) == "rolled back"
    assert snapshot_light(repo) == before


def test_killed_after_commit_rolls_forward(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*_args: object, **_kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(journal, "clear", die)  # the commit exists; the journal was not removed
    with pytest.raises(Killed):
        api.ingest(Workspace(repo), [batch_file(tmp_path, 0)], "reviews")
    monkeypatch.undo()
    head = git.head(repo)
    assert recover(repo) == "rolled forward"
    assert git.head(repo) == head and git.dirty_paths(repo) == []
    assert len(batches.read_rows(Workspace(repo), "reviews")) == ROWS
    assert api.ingest(Workspace(repo), [batch_file(tmp_path, 0)], "reviews").version is None  # key cache healed


def test_killed_between_gits_ref_update_and_its_index_write_rolls_forward_clean(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`git commit -- paths` moves HEAD, then writes the index: a kill between the two leaves the
    commit made, the work tree committed, and the index still holding the old content."""
    def die(*_args: object, **_kwargs: object) -> None:
        raise Killed

    api.ingest(Workspace(repo), [batch_file(tmp_path, 0)], "reviews")
    monkeypatch.setattr(journal, "clear", die)
    with pytest.raises(Killed):
        api.ingest(Workspace(repo), [batch_file(tmp_path, 1)], "reviews")
    monkeypatch.undo()
    paths = ["data.dvc", "registry/datasets/reviews.yaml"]
    git.run(repo, "reset", "-q", "HEAD~1", "--", *paths)  # the index as the killed commit left it
    assert sorted(git.dirty_paths(repo)) == paths
    assert recover(repo) == "rolled forward"
    assert git.dirty_paths(repo) == [] and len(batches.read_rows(Workspace(repo), "reviews")) == 2 * ROWS


def snapshot_light(root: Path) -> dict:
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and ".git" not in p.parts and ".dvc" not in p.parts)
    return {"head": git.head(root), "files": files, "dirty": git.dirty_paths(root),
            "yaml": (root / "registry/datasets/reviews.yaml").read_text()}
