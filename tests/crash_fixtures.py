"""Killing gitops for real: a CLI run whose process group gets SIGKILL after a delay, a CLI run that
SIGKILLs itself at a named moment (before or after a chosen function), and git hooks that kill the
group while git itself holds its locks. Shared by the crash tests of every committing verb."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.data_fixtures import subprocess_env

# Git lock files a killed 'git add'/'git commit' may leave (the branch is always main in these tests).
GIT_LOCKS = (".git/index.lock", ".git/HEAD.lock", ".git/refs/heads/main.lock")

# Runs the CLI with one function wrapped: SIGKILL to itself before or after it runs. Nothing can
# catch that, so the process dies exactly there, as a power cut or the OOM killer would leave it.
_KILL_AT = r"""
import importlib, os, signal, sys
module, attr, when = sys.argv[1:4]
owner = importlib.import_module(module)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, name)
def wrapper(*args, **kwargs):
    if when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    out = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(owner, name, wrapper)
from gitops.cli import main
main(sys.argv[4:], prog_name="gitops")
"""


def gitops_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gitops", *args]


def run_and_kill(root: Path, cmd: list[str], delay: float) -> int | None:
    """Run ``cmd`` in its own process group; SIGKILL the whole group (Python and any git child) after
    ``delay`` seconds. The exit code when it finished first, else None."""
    proc = subprocess.Popen(cmd, cwd=root, env=subprocess_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def run_killed_at(root: Path, target: str, when: str, *args: str) -> subprocess.CompletedProcess:
    """``gitops ARGS`` that SIGKILLs itself ``when`` ("before"/"after") ``target`` ("module:attr") runs."""
    module, attr = target.split(":")
    return subprocess.run([sys.executable, "-c", _KILL_AT, module, attr, when, *args], cwd=root,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120, start_new_session=True,
                          check=False)


def kill_in_git(root: Path, state: str) -> Path:
    """A reference-transaction hook that SIGKILLs its process group (the gitops process, git, the
    hook) when git's ref update reaches ``state``: "prepared" (git holds the index, HEAD and branch
    locks, nothing moved) or "committed" (the branch moved, the index not yet written)."""
    hook = root / ".git" / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f'#!/bin/sh\n[ "$1" = "{state}" ] || exit 0\nkill -9 0\n')
    hook.chmod(0o755)
    return hook


def left_locks(root: Path) -> list[str]:
    return [rel for rel in GIT_LOCKS if (root / rel).exists()]


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def run_cli(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m gitops ARGS`` to the end, in its own process group (a hook may kill that group)."""
    return subprocess.run(gitops_cmd(*args), cwd=root, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True, check=False)
