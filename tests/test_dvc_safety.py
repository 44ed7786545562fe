"""DVC, safely: the incremental data.dvc writer keeps a user's keys, honours link cache types, and a
remote URL with '%' in it works with --push. Real git, real DVC, the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from gitops import api, yamlio
from gitops.adapters import git
from gitops.adapters.dvc import Dvc
from tests.conftest import run_gitops
from tests.data_fixtures import isolate_home, make_repo

COLUMNS = {"id": "string", "text": "string", "rating": "int"}


def batch(path: Path, start: int, stop: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"r{i}", "text": f"review {i}", "rating": i % 5 + 1}) + "\n"
                            for i in range(start, stop)), encoding="utf-8")
    return path


def dvc_status_clean(root: Path) -> bool:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.status() == {}


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_home(monkeypatch, tmp_path)
    root = make_repo(tmp_path / "repo", remote=tmp_path / "dvc-remote")
    monkeypatch.chdir(root)
    api.create_dataset(api.Workspace(root), "reviews", COLUMNS, "text", ["id"])
    return root


def test_an_ingest_keeps_the_users_keys_in_data_dvc(repo: Path, tmp_path: Path) -> None:
    assert run_gitops("ingest", str(batch(tmp_path / "a.jsonl", 0, 10)), "--dataset", "reviews").exit_code == 0
    pointer = repo / "data.dvc"
    doc = yamlio.plain(yamlio.load_file(pointer))
    doc["outs"][0].update({"desc": "every data set's batches", "remote": "storage", "push": False,
                           "meta": {"owner": "data-team"}})
    doc = {"desc": "reviews and friends", **doc, "meta": {"ticket": "DATA-7"}}
    pointer.write_text(yamlio.dumps(doc))
    git.commit(repo, "data.dvc: describe it", ["data.dvc"])

    assert run_gitops("ingest", str(batch(tmp_path / "b.jsonl", 10, 20)), "--dataset", "reviews").exit_code == 0
    after = yamlio.plain(yamlio.load_file(pointer))
    out = after["outs"][0]
    assert (out["desc"], out["remote"], out["push"], out["meta"]) == (
        "every data set's batches", "storage", False, {"owner": "data-team"})
    assert after["desc"] == "reviews and friends" and after["meta"] == {"ticket": "DATA-7"}
    assert out["md5"] != doc["outs"][0]["md5"] and out["nfiles"] == 4  # two batches, two key shards
    assert dvc_status_clean(repo)
    ours = pointer.read_text()
    Dvc(repo).add(str(repo / "data"))  # DVC's own full re-walk records exactly the same file
    assert pointer.read_text() == ours


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_link_cache_types_are_honoured(repo: Path, tmp_path: Path, link: str) -> None:
    config = repo / ".dvc" / "config"
    text = config.read_text()
    assert "[cache]\n    type = " in text  # gitops init chose one; this test forces each kind
    config.write_text(re.sub(r"(\[cache\]\n    type = )[^\n]*", lambda m: m.group(1) + link, text))
    git.commit(repo, f"dvc: cache.type {link}", [".dvc/config"])
    for n, (start, stop) in enumerate([(0, 10), (10, 20)]):  # the first via dvc add, then incrementally
        result = run_gitops("ingest", str(batch(tmp_path / f"{n}.jsonl", start, stop)), "--dataset", "reviews")
        assert result.exit_code == 0, result.stderr
    dvc = Dvc(repo)
    files = sorted(p for p in (repo / "data").rglob("*") if not p.is_dir())
    assert len(files) == 4
    for path in files:
        obj = dvc.object_path(hashlib.md5(path.read_bytes()).hexdigest())
        assert obj.is_file()
        if link == "symlink":
            assert path.is_symlink() and Path(os.readlink(path)) == obj, path
        else:
            assert not path.is_symlink() and os.path.samefile(path, obj), path
    assert dvc_status_clean(repo)


def test_a_remote_url_with_percent_works_with_push(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_home(monkeypatch, tmp_path)
    remote = tmp_path / "dvc remote%20with %41 percent"
    root = make_repo(tmp_path / "repo", remote=remote)
    assert "%20" in (root / ".dvc" / "config").read_text()
    origin = tmp_path / "origin.git"
    git.run(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git.run(root, "remote", "add", "origin", str(origin))
    monkeypatch.chdir(root)
    api.create_dataset(api.Workspace(root), "reviews", COLUMNS, "text", ["id"])
    result = run_gitops("ingest", str(batch(tmp_path / "a.jsonl", 0, 12)), "--dataset", "reviews", "--push")
    assert result.exit_code == 0, result.stderr
    assert "Pushed data" in result.stdout
    assert git.run(origin, "rev-parse", "main").strip() == git.head(root)
    assert Dvc(root).missing_on_remote([str(root / "data.dvc")]) == []
    assert sum(1 for p in remote.rglob("*") if p.is_file()) >= 3  # two files and the .dir manifest
