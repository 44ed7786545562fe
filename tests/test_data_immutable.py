"""Released data set versions are immutable, record and bytes (issue 17, hole 1).

The repro: change the rows of an ingested batch (every row moved into the holdout), ``dvc add``,
``dvc push``, commit ``data.dvc``. Before, ``gitops check --base`` said "released versions are
unchanged" and, in a fresh clone, ``reviews@v1`` read the new rows: every reader used bytes fetched
through DVC without checking them. Now every reader checks a batch's bytes against the sha256 its
version records (and its name carries) wherever the copy came from, and ``check --base`` refuses
any change to a released version's record, to a data set's schema or split rule once it has
versions, and a ``data.dvc`` that changed without a new data set version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops import api
from gitops.core.workspace import Workspace
from gitops.errors import IntegrityError
from tests.conftest import run_gitops
from tests.prompt_fixtures import DATA, MODEL, write_prompt

DATASET_FILE = f"registry/datasets/{DATA}.yaml"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _batch(root: Path) -> Path:
    record = yaml.safe_load((root / DATASET_FILE).read_text())["versions"]["v1"]
    return root / record["batch"]


@pytest.fixture
def attacked(ratings_repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """ratings_repo with a few-shot prompt version ratings@v1, retrieving from reviews@v1, as protected
    production (the base commit), then the attack as one commit: reviews@v1's batch rewritten in place
    (every row in the holdout), dvc add, dvc push, data.dvc committed; the dataset YAML untouched."""
    root = ratings_repo
    few = write_prompt(tmp_path / "few.yaml")  # bm25 k=3 over reviews@v1's train split
    assert run_gitops("prompt", "add", MODEL, "--config", str(few), cwd=root).exit_code == 0
    assert run_gitops("alias", "set", MODEL, "production", "v1", cwd=root).exit_code == 0
    model = root / f"registry/{MODEL}/model.yaml"
    model.write_text(model.read_text().replace("versions:\n", "protected:\n  production: ['@acme/mlops']\n"
                                                                "versions:\n", 1))
    assert run_gitops("codeowners", "--write", cwd=root).exit_code == 0
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "protect production")
    base = _git(root, "rev-parse", "HEAD")
    batch = _batch(root)
    rows = [json.loads(line) for line in batch.read_text().splitlines()]
    assert sum(r["split"] == "test" for r in rows) < len(rows)
    batch.unlink()  # DVC links it to its cache read-only: an attacker replaces the file
    batch.write_text("".join(json.dumps({**r, "split": "test"}) + "\n" for r in rows))
    _dvc(root, "add", "data")
    _dvc(root, "push")
    _git(root, "add", "data.dvc")
    _git(root, "commit", "-qm", "data: tidy up")
    return root, base


def test_the_rewrite_is_refused_by_readers_and_by_check_base(attacked: tuple[Path, str], tmp_path: Path) -> None:
    root, base = attacked
    # a fresh clone: everything comes from the DVC remote, which serves the rewritten rows
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(root), str(clone))
    assert not (clone / "data").exists()
    with pytest.raises(IntegrityError, match=r"reviews@v1\): the copy DVC served has sha256 .* a released batch "
                                             r"was rewritten"):
        api.read_rows(Workspace(clone), f"{DATA}@v1")
    out = clone / "predictions.jsonl"
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=clone)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert "a released batch was rewritten" in res.stderr and "reviews@v1" in res.stderr, res.stderr
    assert not out.exists() and not list(clone.glob("predictions*"))
    # the attacker's own work tree: the rewritten file is in the work tree and the DVC cache
    with pytest.raises(IntegrityError, match="a released batch was rewritten"):
        api.read_rows(Workspace(root), f"{DATA}@v1", "train")
    # and the required check names it, and asks production's owners to approve it
    res = run_gitops("check", "--base", base, cwd=root)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert "data.dvc changed" in res.stderr and "no data set version was added" in res.stderr, res.stderr
    res = run_gitops("approvals", "--base", base, "--json", cwd=root)
    [change] = json.loads(res.stdout)["changes"]
    assert (change["path"], change["aliases"], change["owners"]) == ("data.dvc", [f"{MODEL}@production"],
                                                                     ["@acme/mlops"]), change


def test_an_honest_ingest_passes_check_base_and_reads(ratings_repo: Path, tmp_path: Path) -> None:
    root = ratings_repo
    base = _git(root, "rev-parse", "HEAD")
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"id": f"n{i}", "text": f"fine thing {i}", "rating": "3"}) + "\n"
                            for i in range(10)))
    assert run_gitops("ingest", str(more), "--dataset", DATA, cwd=root).exit_code == 0
    record = yaml.safe_load((root / DATASET_FILE).read_text())["versions"]["v2"]
    assert record["batch"].split("-")[-1].split(".")[0] == record["sha256"][:10]
    res = run_gitops("check", "--base", base, cwd=root)
    assert res.exit_code == 0, res.stderr
    assert len(api.read_rows(Workspace(root), f"{DATA}@v2")) == 70


def _edit(root: Path, change) -> None:  # untyped: a function of the parsed data set file
    doc = yaml.safe_load((root / DATASET_FILE).read_text())
    change(doc)
    (root / DATASET_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))


EDITS = [
    ("v1's batch re-pointed at a new hash-named file",
     lambda d: d["versions"]["v1"].update(batch="data/reviews/b000001-0123456789.jsonl"), "version v1 changed (batch"),
    ("v1's row count", lambda d: d["versions"]["v1"].update(rows=400), "version v1 changed (rows"),
    ("v1's split counts", lambda d: d["versions"]["v1"]["splits"].update(test=40), "version v1 changed (splits"),
    ("v1's md5", lambda d: d["versions"]["v1"].update(md5="0" * 32 + ".dir"), "version v1 changed (md5"),
    ("v1's sha256 dropped", lambda d: d["versions"]["v1"].pop("sha256"), "version v1 changed (sha256"),
    ("v1 removed", lambda d: d["versions"].pop("v1"), "version v1 was removed"),
    ("the split fractions", lambda d: d.update(splits={"train": 0.5, "valid": 0.1, "test": 0.4}),
     "its splits changed"),
    ("the key", lambda d: d.update(key=["text"]), "its key changed"),
    ("the text field", lambda d: d.update(text_field="rating"), "its text_field changed"),
    ("the data set removed", None, f"data set '{DATA}' was removed"),
]


def test_a_released_data_set_version_is_immutable(ratings_repo: Path) -> None:
    """Every key of a released version's record, the data set's schema and split rule, removals:
    each edit alone fails ``check --base`` naming the file; a new description passes."""
    root = ratings_repo
    base = _git(root, "rev-parse", "HEAD")
    for name, change, words in EDITS:
        if change is None:
            (root / DATASET_FILE).unlink()
        else:
            _edit(root, change)
        res = run_gitops("check", "--base", base, cwd=root)
        assert res.exit_code == 1, f"{name}: passed check --base"
        assert DATASET_FILE in res.stderr and words in res.stderr, (name, res.stderr)
        _git(root, "checkout", "-q", "--", DATASET_FILE)
    _edit(root, lambda d: d.update(description="reviews, now described"))
    assert run_gitops("check", "--base", base, cwd=root).exit_code == 0
