"""Ingest tail latency (issue 20, item 8): no git command gitops runs starts git's automatic
maintenance (``git commit`` ran ``git gc --auto`` in the foreground, under the write lock, once
~6,700 loose objects piled up: ingest #1,000 took 16 s, #2,409 35 s); gitops packs loose objects
itself, incrementally, without walking the history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops import api
from gitops.adapters import git
from tests.data_fixtures import GIT_ENV, isolate_home, make_repo

COLUMNS = {"id": "string", "text": "string", "rating": "int"}


def _ingest(root: Path, tmp: Path, b: int) -> None:
    src = tmp / f"b{b}.jsonl"
    src.write_text("".join(json.dumps({"id": f"b{b}-{i}", "text": f"review {b} {i}", "rating": 3}) + "\n"
                           for i in range(3)))
    assert api.ingest(api.Workspace(root), [src], "reviews").version is not None


def _objects(root: Path) -> dict[str, int]:
    lines = git.run(root, "count-objects", "-v").splitlines()
    return {k: int(v) for k, v in (line.split(": ") for line in lines) if k in ("count", "in-pack", "packs")}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_home(monkeypatch, tmp_path)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    root = make_repo(tmp_path / "repo")
    git.run(root, "config", "gc.auto", "1")   # git itself would now collect garbage after every commit
    api.create_dataset(api.Workspace(root), "reviews", COLUMNS, "text", ["id"])
    return root


def test_gitops_commits_never_start_gits_automatic_maintenance(repo: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    for b in range(3):
        _ingest(repo, tmp_path, b)
    started = [json.loads(line).get("argv", []) for line in trace.read_text().splitlines()
               if '"event":"child_start"' in line]
    assert started == [a for a in started if not ({"gc", "maintenance"} & set(a))], started
    assert any("commit" in json.loads(line).get("argv", []) for line in trace.read_text().splitlines()
               if '"event":"start"' in line)             # the commits were traced: nothing started from them
    assert _objects(repo)["count"] > 0 and _objects(repo)["packs"] == 0   # below the limit: left loose


def test_loose_objects_past_the_limit_are_packed_by_the_commit_that_crosses_it(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest(repo, tmp_path, 0)
    loose = _objects(repo)["count"]
    monkeypatch.setattr(git, "LOOSE_PACK_LIMIT", -1)        # any estimate is past it
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    _ingest(repo, tmp_path, 1)
    after = _objects(repo)
    assert after["count"] == 0 and after["packs"] == 1 and after["in-pack"] > loose   # every loose object packed
    commands = [json.loads(line).get("argv", []) for line in trace.read_text().splitlines()
                if '"event":"start"' in line]
    assert any("--task=loose-objects" in a for a in commands)
    assert not any(a[-2:] == ["gc", "--auto"] or ("repack" in a and "-a" in a) for a in commands)  # no full repack
    assert git.run(repo, "fsck", "--no-progress", "--no-dangling").strip() == ""   # nothing lost
    assert len(api.Workspace(repo).registry().datasets["reviews"].versions) == 2
