"""A register killed at any moment (SIGKILL) leaves the repository as before or as after, never between,
and registering the same weights again never makes a second version.

The loop runs ``python -m gitops register`` in its own process group and kills the group (Python and
any git child, as a cancelled CI job or a power cut would) after a random delay; then the same
weights are registered again, which must succeed: as a new version when the killed run had not
committed, as the existing version (nothing committed) when it had. The kill points test dies at
named moments, inside git too (a reference-transaction hook kills the group while git holds its
locks). Both look at the repository after the re-run through git alone: HEAD moved by exactly one
commit, the model grew by exactly one version holding exactly these weights, and nothing is left
over (no dirty or untracked file, no lock, no journal).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gitops import api
from gitops.adapters import git
from gitops.core import journal
from gitops.core.workspace import Workspace
from gitops.errors import RepoStateError
from tests.crash_fixtures import (
    gitops_cmd,
    kill_in_git,
    left_locks,
    run_and_kill,
    run_cli,
    run_killed_at,
    wait_for,
)
from tests.data_fixtures import isolate_home, make_repo, subprocess_env

MODEL = "m"
LINEAGE = {"fmt": "hf", "parent": "v1", "base_model": "gitops/tiny-opt"}
LINEAGE_ARGS = ("--format", "hf", "--parent", "v1", "--base-model", "gitops/tiny-opt")
ROUNDS = int(os.environ.get("GITOPS_CRASH_ROUNDS", "24"))
BUDGET_S = float(os.environ.get("GITOPS_CRASH_BUDGET_S", "40"))


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo whose model has v1 (so ``models/m/.gitignore`` is tracked: a register changes three files)."""
    isolate_home(monkeypatch, tmp_path)
    root = make_repo(tmp_path / "repo")
    ws = Workspace(root)
    api.create_model(ws, MODEL)
    api.register(ws, MODEL, weights(tmp_path, 0))
    return root


def weights(tmp_path: Path, n: int) -> Path:
    """Weights number ``n``: a quarter MiB of safetensors, a config and a nested tokenizer file."""
    d = tmp_path / f"weights{n:03d}"
    if not d.exists():
        rng = random.Random(n)
        (d / "tokenizer").mkdir(parents=True)
        (d / "model.safetensors").write_bytes(rng.randbytes(256 * 1024))
        (d / "config.json").write_text(json.dumps({"model_type": "opt", "n": n}))
        (d / "tokenizer" / "vocab.json").write_text(json.dumps({"token": n}))
    return d


def file_md5s(top: Path) -> dict[str, str]:
    return {p.relative_to(top).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(top.rglob("*")) if p.is_file()}


def versions(root: Path, rev: str = "HEAD") -> list[str]:
    """The model's versions as committed at ``rev`` (read by git alone: no gitops code decides)."""
    text = git.run(root, "show", f"{rev}:registry/{MODEL}/model.yaml")
    return [line.strip().rstrip(":") for line in text.splitlines() if line.startswith("  v") and line.endswith(":")]


def snapshot(root: Path) -> dict:
    """HEAD, every file under models/ and registry/ with its hash, git's full status, lock files."""
    files = {f"{top}/{rel}": h for top in ("models", "registry") for rel, h in file_md5s(root / top).items()}
    status = git.run(root, "status", "--porcelain", "--untracked-files=all")
    return {"head": git.head(root), "files": files, "status": status, "locks": left_locks(root)}


def assert_one_new_version(root: Path, before: dict, src: Path) -> str:
    """The repository is exactly ``before`` plus one commit adding one version that holds ``src``."""
    now = snapshot(root)
    assert now["status"] == "" and now["locks"] == [], (now["status"], now["locks"])
    assert not (root / ".git/gitops/journal.json").exists()
    assert git.run(root, "rev-parse", "HEAD^").strip() == before["head"], "not exactly one new commit"
    old = versions(root, before["head"])
    new = versions(root)
    assert new[:-1] == old and len(new) == len(old) + 1, (old, new)
    vid = new[-1]
    assert file_md5s(root / f"models/{MODEL}/{vid}") == file_md5s(src)
    changed = {k for k in set(now["files"]) | set(before["files"]) if now["files"].get(k) != before["files"].get(k)}
    ours = {f"registry/{MODEL}/model.yaml", f"models/{MODEL}/.gitignore", f"models/{MODEL}/{vid}.dvc"}
    assert changed - ours == {f"models/{MODEL}/{vid}/{rel}" for rel in file_md5s(src)}
    return vid


def register_args(src: Path) -> list[str]:
    return ["register", MODEL, str(src), *LINEAGE_ARGS]


def test_sigkill_during_register_leaves_before_or_after(repo: Path, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("GITOPS_CRASH_SEED", "11")))
    start = time.monotonic()
    assert run_and_kill(repo, gitops_cmd(*register_args(weights(tmp_path, 1))), 120) == 0  # to time one
    full = time.monotonic() - start
    outcomes = {"rounds": 0, "killed": 0, "before": 0, "after": 0, "left journal": 0, "left git lock": 0}
    # The timed run may have had the CPU to itself while later ones share it (pytest-xdist, a busy
    # runner): the delays follow the load, longer after a kill before the commit, shorter after one.
    scale = full
    for n in range(2, ROUNDS + 2):
        src, before = weights(tmp_path, n), snapshot(repo)
        # bias towards the end of the run, where the weights are added and the commit happens
        delay = scale * (rng.uniform(0.1, 1.1) if rng.random() < 0.4 else rng.uniform(0.5, 1.05))
        finished = run_and_kill(repo, gitops_cmd(*register_args(src)), delay) is not None
        killed = snapshot(repo)
        committed = killed["head"] != before["head"]
        outcomes["rounds"] += 1
        outcomes["killed"] += not finished
        outcomes["after" if committed else "before"] += 1
        outcomes["left journal"] += (repo / ".git/gitops/journal.json").exists()
        outcomes["left git lock"] += bool(killed["locks"])
        scale = min(scale * 1.15, full * 4) if not committed else max(scale * 0.95, full * 0.5)
        # The user runs the same command again: it succeeds, and the weights are registered once:
        # a new version when the killed run had not committed, the one it committed when it had.
        result = api.register(Workspace(repo), MODEL, src, **LINEAGE)
        assert result.created != committed, (n, delay, committed)
        assert_one_new_version(repo, before, src)
        if time.monotonic() - start > BUDGET_S:
            break
    print(outcomes, f"(one uninterrupted run: {full:.1f} s, loop: {time.monotonic() - start:.0f} s)")
    # the kills did land on both sides of the commit, and some mid-change (a journal left to settle)
    assert outcomes["before"] and outcomes["after"] and outcomes["left journal"], outcomes


# (what is wrapped, when the process kills itself) or ("hook", git's ref-transaction state)
KILL_POINTS = {
    "weights copied, before dvc add": ("gitops.adapters.dvc:Dvc.add", "before"),
    "after dvc add": ("gitops.adapters.dvc:Dvc.add", "after"),
    "model.yaml appended": ("gitops.core.layout:append_version", "after"),
    "about to run git commit": ("gitops.adapters.git:commit", "before"),
    "git holds its locks": ("hook", "prepared"),
    "branch moved, index not written": ("hook", "committed"),
    "committed, not yet finished": ("gitops.adapters.git:commit", "after"),
}
COMMITTED = {"branch moved, index not written", "committed, not yet finished"}


def kill_register_at(repo: Path, point: str, src: Path) -> None:
    target, when = KILL_POINTS[point]
    if target == "hook":
        hook = kill_in_git(repo, when)
        out = run_cli(repo, *register_args(src))
        hook.unlink()
    else:
        out = run_killed_at(repo, target, when, *register_args(src))
    assert out.returncode == -9, (out.returncode, out.stderr[-2000:])


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_at_each_point_is_settled_then_registers_once(repo: Path, tmp_path: Path, point: str) -> None:
    src, before = weights(tmp_path, 1), snapshot(repo)
    kill_register_at(repo, point, src)
    assert (git.head(repo) != before["head"]) == (point in COMMITTED)
    assert (repo / ".git/gitops/journal.json").exists()
    if KILL_POINTS[point][0] == "hook":  # git died holding its locks: they are stale now
        assert ".git/index.lock" in left_locks(repo)
    # what the next committing command does first, on its own: roll back or forward, exactly
    with Workspace(repo).writing("check") as recovered:
        pass
    if point in COMMITTED:
        assert recovered == "rolled forward"
        assert_one_new_version(repo, before, src)
    else:
        assert recovered == "rolled back"
        assert snapshot(repo) == before
    # the user runs the same command again: one version of these weights, whatever had happened
    result = api.register(Workspace(repo), MODEL, src, **LINEAGE)
    assert result.created == (point not in COMMITTED)
    assert_one_new_version(repo, before, src)


def test_the_same_weights_and_lineage_register_once(repo: Path, tmp_path: Path) -> None:
    src = weights(tmp_path, 1)
    first = api.register(Workspace(repo), MODEL, src, **LINEAGE)
    head, vs = git.head(repo), versions(repo)
    again = run_cli(repo, *register_args(src))
    assert again.returncode == 0, again.stderr
    assert f"{MODEL}@{first.version.id} already holds these weights" in again.stdout, again.stdout
    assert git.head(repo) == head and versions(repo) == vs
    assert snapshot(repo)["status"] == "" and not (repo / f"models/{MODEL}/v{len(vs) + 1}").exists()
    # other lineage (no parent), or other weights: new versions
    assert api.register(Workspace(repo), MODEL, src, fmt="hf").created
    assert api.register(Workspace(repo), MODEL, weights(tmp_path, 2), **LINEAGE).created
    assert len(versions(repo)) == len(vs) + 2


def test_register_move_of_known_weights_removes_them_and_commits_nothing(repo: Path, tmp_path: Path) -> None:
    """A ``--move`` killed after its commit left the weights in place: the re-run finishes the move."""
    src = weights(tmp_path, 1)
    first = api.register(Workspace(repo), MODEL, src, **LINEAGE)
    head = git.head(repo)
    again = api.register(Workspace(repo), MODEL, src, move=True, **LINEAGE)
    assert not again.created and again.version == first.version and git.head(repo) == head
    assert not src.exists() and not list(tmp_path.glob(f".{src.name}*"))


def test_register_clears_a_stale_index_lock(repo: Path, tmp_path: Path) -> None:
    """A git killed mid-write leaves ``index.lock`` behind; no git process is alive to own it, so it goes."""
    (repo / ".git/index.lock").write_text("")
    before = snapshot(repo)
    out = run_cli(repo, *register_args(weights(tmp_path, 1)))
    assert out.returncode == 0, out.stderr
    assert_one_new_version(repo, before, weights(tmp_path, 1))


def test_a_live_git_in_the_tree_keeps_its_lock(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``index.lock`` while a git process works in the tree may be that git's: wait for it, then refuse."""
    lock = repo / ".git/index.lock"
    lock.write_text("")
    live = subprocess.Popen(["git", "hash-object", "--stdin"], cwd=repo, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    monkeypatch.setattr(journal, "GIT_WAIT_S", 0.5)
    try:
        with pytest.raises(RepoStateError, match=rf"git \(pid {live.pid}\) is running in .* may own \.git/index\.lock"):
            api.register(Workspace(repo), MODEL, weights(tmp_path, 1), **LINEAGE)
        assert lock.exists() and snapshot(repo)["status"] == ""
        # a git that finishes while we wait takes its lock with it, and the register goes on
        monkeypatch.setattr(journal, "GIT_WAIT_S", 30.0)
        threading.Timer(0.3, lambda: (lock.unlink(), live.communicate(b""))).start()
        assert api.register(Workspace(repo), MODEL, weights(tmp_path, 1), **LINEAGE).created
    finally:
        live.kill()
        live.wait()


def test_without_a_process_list_only_a_journal_proves_a_lock_stale(repo: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git, "live_git_processes", lambda _root: None)  # a system without /proc
    (repo / ".git/index.lock").write_text("")
    with pytest.raises(RepoStateError, match=r"index\.lock exists: a git process may be running"):
        api.register(Workspace(repo), MODEL, weights(tmp_path, 1), **LINEAGE)
    assert (repo / ".git/index.lock").exists()
    journal.begin(git.Git(repo), repo / ".git/gitops/journal.json", "register m v2", [], [])  # a dead transaction's
    assert api.register(Workspace(repo), MODEL, weights(tmp_path, 1), **LINEAGE).created
    assert not (repo / ".git/index.lock").exists()


def test_a_git_left_running_by_a_killed_register_keeps_everyone_out(repo: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL to the gitops process alone (the OOM killer's way) leaves its git child committing. The
    next command must wait for that git, not undo the commit in flight; then it rolls forward."""
    monkeypatch.setattr(journal, "GIT_WAIT_S", 0.5)
    ready, release = tmp_path / "git-is-committing", tmp_path / "let-git-finish"
    hook = repo / ".git/hooks/reference-transaction"
    hook.write_text(f'#!/bin/sh\n[ "$1" = prepared ] || exit 0\ntouch "{ready}"\n'
                    f'while [ ! -e "{release}" ]; do sleep 0.05; done\n')
    hook.chmod(0o755)
    src, before = weights(tmp_path, 1), snapshot(repo)
    proc = subprocess.Popen(gitops_cmd(*register_args(src)), cwd=repo, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(ready)
    proc.kill()  # Python only: git and its hook live on, holding index.lock, the branch lock and ours
    proc.wait()
    with pytest.raises(RepoStateError, match=r"an interrupted register \(pid \d+\) left a git process running"):
        api.register(Workspace(repo), MODEL, src, **LINEAGE)
    assert (repo / ".git/index.lock").exists() and git.head(repo) == before["head"]
    release.write_text("")
    hook.unlink()
    deadline = time.monotonic() + 60
    while True:  # the orphaned git finishes its commit, then the lock is free
        try:
            result = api.register(Workspace(repo), MODEL, src, **LINEAGE)
            break
        except RepoStateError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert (result.recovered, result.created) == ("rolled forward", False)
    assert_one_new_version(repo, before, src)


def test_a_journal_that_head_no_longer_matches_is_not_guessed_at(repo: Path, tmp_path: Path) -> None:
    """Killed before its commit, then someone committed by hand: neither rolling back nor forward is
    safe (either could lose that work), so every committing command refuses, naming the journal."""
    src = weights(tmp_path, 1)
    assert run_killed_at(repo, "gitops.adapters.git:commit", "before", *register_args(src)).returncode == -9
    git.run(repo, "commit", "-q", "--allow-empty", "-m", "someone else's commit")
    left = snapshot(repo)
    out = run_cli(repo, *register_args(src))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "journal.json: an interrupted register m v2 started at commit" in out.stderr, out.stderr
    assert "which does not hold its change" in out.stderr
    assert snapshot(repo) == left and (repo / ".git/gitops/journal.json").exists()


def test_an_unreadable_journal_is_refused_in_one_sentence(repo: Path, tmp_path: Path) -> None:
    (repo / ".git/gitops/journal.json").write_text("{not json")
    before = snapshot(repo)
    out = run_cli(repo, *register_args(weights(tmp_path, 1)))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "journal.json: unreadable gitops journal; inspect the repository" in out.stderr, out.stderr
    assert snapshot(repo) == before


def test_one_writer_at_a_time_across_verbs(repo: Path, tmp_path: Path) -> None:
    with Workspace(repo).writing("ingest"):
        with pytest.raises(RepoStateError, match=r"another ingest is running in .* \(pid \d+"):
            api.register(Workspace(repo), MODEL, weights(tmp_path, 1), **LINEAGE)
        with pytest.raises(RepoStateError, match="another ingest is running"):
            api.set_alias(Workspace(repo), MODEL, "staging", "v1")
    assert api.register(Workspace(repo), MODEL, weights(tmp_path, 1), **LINEAGE).created


# The other committing verbs share the journal: killed just before their commit, the same command
# run again succeeds, with exactly one commit (each leaves a tracked file changed, or a new file, that
# made the re-run refuse or say "already exists" before).
VERBS = {
    "alias set": ["alias", "set", MODEL, "staging", "v2"],
    "alias unset": ["alias", "unset", MODEL, "staging"],
    "model create": ["model", "create", "other"],
    "dataset create": ["dataset", "create", "reviews", "--column", "id:string", "--column", "text:string",
                       "--text-field", "text", "--key", "id"],
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_other_verbs_killed_before_their_commit_run_again(repo: Path, tmp_path: Path, verb: str) -> None:
    ws = Workspace(repo)
    api.register(ws, MODEL, weights(tmp_path, 1), **LINEAGE)
    api.set_alias(ws, MODEL, "staging", "v1")
    head = git.head(repo)
    out = run_killed_at(repo, "gitops.adapters.git:commit", "before", *VERBS[verb])
    assert out.returncode == -9, out.stderr[-2000:]
    assert git.head(repo) == head
    again = run_cli(repo, *VERBS[verb])
    assert again.returncode == 0, again.stderr
    assert "was found and rolled back." in again.stderr, again.stderr
    assert git.run(repo, "rev-parse", "HEAD^").strip() == head
    assert git.run(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (repo / ".git/gitops/journal.json").exists()
