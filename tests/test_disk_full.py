"""A full disk: a committing command either commits and says so, or fails cleanly and changes nothing.

Issue 17, item 8: on a full disk ``gitops ingest`` committed v1, then updated its key cache
(sqlite), failed there and exited 1 with a traceback: a script read a success as a failure. The
disk is full for real here, two ways:

- **tmpfs**: the repository lives on a 16 MiB tmpfs mounted in a private mount namespace
  (``unshare -rm``: no root needed where unprivileged user namespaces are allowed; the mount
  vanishes with the process), filled to leave a given number of bytes free. Only where the
  namespace can be made (the test says which sweeps ran).
- **fsize**: ``RLIMIT_FSIZE`` (every process may grow a file to N bytes at most; writes past it
  fail with EFBIG, SIGXFSZ ignored). Always available: it is how the key cache, the largest file
  an ingest of many short rows writes, fails after the commit while everything before it fits.

For each amount of room, ``ingest`` (a first batch of 4,000 short rows into a data set: the batch
file, its key shard, DVC's cache, the data set file, git's objects, the commit, then the key
cache) and ``register`` (a 600 KB model) must exit 0 with the commit made, or exit 1 with one
``Error:`` sentence and no traceback, HEAD and ``git status`` exactly as before, and with room
again the repository must pass ``gitops check`` and the same command succeed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_gitops
from tests.hostile_fixtures import COLUMNS, MODEL, copy_repo, isolated, make_hostile_repo

ROOT = Path(__file__).resolve().parents[1]
FRESH = "fresh"
ROWS = 4000
SWEEP = textwrap.dedent(r'''
    import errno, json, os, resource, shutil, signal, subprocess, sys
    from pathlib import Path
    from click.testing import CliRunner
    from gitops.cli import main

    template, work, mode, cases = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])

    def git(repo, *args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout

    def state(repo):
        return git(repo, "rev-parse", "HEAD").strip(), git(repo, "status", "--porcelain", "--untracked-files=all")

    def fill(mnt, free):
        """Fill the file system, then free ``free`` bytes (tmpfs counts whole pages)."""
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as fh:  # unbuffered: closing it has nothing left to write
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError as exc:
                assert exc.errno in (errno.ENOSPC, errno.EDQUOT), exc
        with open(filler, "r+b") as fh:
            fh.truncate(max(0, os.path.getsize(filler) - free))
        return filler

    def run(repo, args):
        old = os.getcwd()
        os.chdir(repo)
        try:
            r = CliRunner().invoke(main, args, catch_exceptions=True)
        finally:
            os.chdir(old)
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        return {"code": r.exit_code, "out": r.stdout[-1000:], "err": r.stderr[-2000:],
                "exc": repr(r.exception) if crashed else None}

    results = []
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead
    for n, (args, room) in enumerate(cases):
        mnt = work / f"{mode}{n}"
        mnt.mkdir()
        if mode == "tmpfs":
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
        repo = mnt / "repo"
        shutil.copytree(template, repo, symlinks=True)
        before = state(repo)
        if mode == "tmpfs":
            filler = fill(mnt, room)
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))
        first = run(repo, args)
        if mode == "tmpfs":
            filler.unlink()
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        after = state(repo)
        check = run(repo, ["check"])
        again = run(repo, args) if first["code"] else None
        results.append({"args": args, "room": room, "first": first, "changed": before != after,
                        "moved": before[0] != after[0], "status": after[1], "check": check, "again": again})
        shutil.rmtree(repo, ignore_errors=True)
        if mode == "tmpfs":
            subprocess.run(["umount", str(mnt)], check=True)
    print(json.dumps(results))
''')


def _namespace() -> list[str] | None:
    """The command prefix that runs a process in a private mount namespace, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run([unshare, "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt"],
                           capture_output=True, text=True, timeout=30, check=False)
    return [unshare, "-rm"] if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    """The hostile repository plus a data set never ingested into (its first ingest makes v1 and
    the key cache, as in the report); the ingest and register command lines to run in it."""
    base = tmp_path_factory.mktemp("diskfull")
    with isolated(base / "home"):
        root = make_hostile_repo(base)
        res = run_gitops("dataset", "create", FRESH, *[a for c in COLUMNS for a in ("--column", c)], "--text-field",
                         "text", "--key", "id", cwd=root)
        assert res.exit_code == 0, res.stderr
    batch = base / "new.jsonl"  # many short rows: the key cache grows more than any file before the commit
    batch.write_text("".join(json.dumps({"id": f"n{i}", "text": "ok", "rating": i % 5 + 1}) + "\n"
                             for i in range(ROWS)), encoding="utf-8")
    weights = base / "weights-v2"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(os.urandom(600_000))
    (weights / "config.json").write_text('{"model_type": "opt"}')
    return root, ["ingest", str(batch), "--dataset", FRESH], ["register", MODEL, str(weights)]


def _sweep(prefix: list[str], mode: str, template_repo: Path, work: Path, cases: list) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([*prefix, sys.executable, "-c", SWEEP, str(template_repo), str(work), mode, json.dumps(cases)],
                         capture_output=True, text=True, timeout=600, env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


def _check(results: list[dict], mode: str) -> None:
    for r in results:
        first, where = r["first"], f"{r['args'][0]} with {r['room']} bytes of room ({mode})"
        assert first["exc"] is None and "Traceback" not in first["err"] + first["out"], (where, first)
        assert first["code"] in (0, 1), (where, first)
        if first["code"] == 0:
            assert r["moved"] and r["status"] == "", (where, r)
        else:
            lines = [x for x in first["err"].splitlines() if x.strip() and not x.startswith("... ")]
            assert len(lines) == 1 and lines[0].startswith("Error: "), (where, first["err"])
            assert not r["changed"], (where, r)  # HEAD and the status (untracked files too) as before
            assert r["again"]["code"] == 0, (where, r["again"])
        assert r["check"]["code"] == 0, (where, r["check"])


def test_a_full_disk_commits_whole_or_changes_nothing(template, tmp_path: Path) -> None:
    root, ingest, register = template
    repo = copy_repo(root, tmp_path / "template")
    summary = []
    # RLIMIT_FSIZE at 300 KB: the batch (210 KB), its shard and git's objects fit, the key cache (380 KB
    # for 4,000 keys) does not, and it is written after the commit: the case of the report
    cases = [(ingest, 0), (ingest, 4096), (ingest, 100_000), (ingest, 300_000), (ingest, 10**8), (register, 300_000)]
    results = _sweep([], "fsize", repo, tmp_path, cases)
    _check(results, "fsize")
    after_commit = next(r for r in results if r["args"] == ingest and r["room"] == 300_000)
    assert after_commit["first"]["code"] == 0 and "the key cache could not take it" in after_commit["first"]["out"]
    assert after_commit["check"]["code"] == 0
    summary.append("fsize: " + ", ".join(f"{r['args'][0]} {r['room']}: exit {r['first']['code']}" for r in results))
    prefix = _namespace()
    if prefix is not None:
        cases = [(ingest, room) for room in (0, 4096, 300_000, 800_000, 1_300_000, 1_500_000, 3_000_000)]
        cases += [(register, room) for room in (0, 200_000, 500_000, 900_000, 1_300_000, 4_000_000)]
        results = _sweep(prefix, "tmpfs", repo, tmp_path, cases)
        _check(results, "tmpfs")
        for command in ("ingest", "register"):
            codes = [r["first"]["code"] for r in results if r["args"][0] == command]
            assert codes[0] == 1 and codes[-1] == 0, (command, codes)  # the sweep reached both outcomes
        summary.append("tmpfs: " + ", ".join(f"{r['args'][0]} {r['room']}: exit {r['first']['code']}"
                                             for r in results))
    else:
        summary.append("tmpfs: no private mount namespace here (unshare -rm refused); the fsize sweep ran alone")
    print("\n".join(summary))
