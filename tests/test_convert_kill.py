"""A killed ``gitops convert`` leaves nothing behind for good (issue 17, item 8).

Each convert worked in a fresh directory under the system's /tmp; a SIGKILL left it there, and 30
kills left 27 of them (hundreds of MB each for a real model). Now it works under the git directory
(``.git/gitops/tmp``, named after its process), and the next convert removes what dead ones left.
The toy base is registered as an ``hf`` version and converted for real; the process is killed
while converting, twice, at different moments, then a last convert runs to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git_state, run_gitops

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hf_repo(tmp_path_factory, base_model_dir: Path) -> Path:
    from tests.hostile_fixtures import isolated

    base = tmp_path_factory.mktemp("convert-kill")
    repo = base / "repo"
    with isolated(base / "home"):
        assert run_gitops("init", str(repo), "--remote", str(base / "dvc-remote")).exit_code == 0
        for args in (("model", "create", "toy"), ("register", "toy", str(base_model_dir), "--format", "hf")):
            res = run_gitops(*args, cwd=repo)
            assert res.exit_code == 0, (args, res.stderr)
    return repo


def test_a_killed_convert_leaves_nothing_behind(hf_repo: Path, tmp_path: Path) -> None:
    systmp = tmp_path / "tmp"
    systmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(systmp)}
    scratch = hf_repo / ".git" / "gitops" / "tmp"
    before = git_state(hf_repo)
    for extra in (0.0, 1.0):  # seconds after its work directory appears
        proc = subprocess.Popen([sys.executable, "-m", "gitops", "convert", "toy@v1", "--to", "ct2"], cwd=hf_repo,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (scratch.is_dir() and any(p.name.startswith(f"convert-{proc.pid}-") for p in scratch.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "convert ended before it was killed"
            time.sleep(0.02)
        time.sleep(extra)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert any(p.name.startswith(f"convert-{proc.pid}-") for p in scratch.iterdir())  # what the kill left
    # each convert removed what the one killed before it left: one directory, not two
    assert len(list(scratch.iterdir())) == 1 and git_state(hf_repo) == before
    done = subprocess.run([sys.executable, "-m", "gitops", "convert", "toy@v1", "--to", "ct2"], cwd=hf_repo, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0 and "toy@v2" in done.stdout + done.stderr, done.stderr[-2000:]
    assert list(scratch.iterdir()) == []  # the dead ones' directories, and its own, are gone
    assert [p.name for p in systmp.iterdir() if "gitops" in p.name or "convert" in p.name] == []
    assert run_gitops("check", cwd=hf_repo).exit_code == 0
