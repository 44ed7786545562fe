"""``gitops approvals --base REF``: every change that can alter what a protected alias computes,
offline (issue 17, the design).

One module (gitops/registry/closure.py) derives each protected alias's closure from the registry's
lineage at the base and computes a change's effect on it; the required check (``--pr``, against
the GitHub emulator in tests/test_github_bypass.py) and this offline preview share it. Here the
repository is real (git, DVC with a local remote): ``ratings@production`` is a few-shot prompt
version pinned to ``ratings-base@v1`` that retrieves from ``reviews@v1``; each change alone is
made in the work tree and must be listed with its path, its kind and the aliases it touches.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_gitops
from tests.prompt_fixtures import BASE, DATA, MODEL, write_prompt

MODEL_FILE = f"registry/{MODEL}/model.yaml"
BASE_FILE = f"registry/{BASE}/model.yaml"
DATASET_FILE = f"registry/datasets/{DATA}.yaml"
PROD = f"{MODEL}@production"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _yaml(root: Path, rel: str, change) -> None:  # untyped: edits the parsed file in place
    doc = yaml.safe_load((root / rel).read_text())
    change(doc)
    (root / rel).write_text(yaml.safe_dump(doc, sort_keys=False))


def _append(root: Path, rel: str, text: str) -> None:
    with open(root / rel, "a", encoding="utf-8") as fh:
        fh.write(text)


@pytest.fixture
def repo(ratings_repo: Path, tmp_path: Path) -> tuple[Path, str]:
    root = ratings_repo
    few = write_prompt(tmp_path / "few.yaml")  # bm25 k=3 over reviews@v1, on ratings-base@v1
    for args in (("prompt", "add", MODEL, "--config", str(few)), ("alias", "set", MODEL, "production", "v1"),
                 ("alias", "set", MODEL, "staging", "v1")):
        assert run_gitops(*args, cwd=root).exit_code == 0, args
    _yaml(root, MODEL_FILE, lambda d: d.update(protected={"production": ["@acme/mlops"]}))
    settings = root / "gitops.yaml"
    settings.write_text(settings.read_text().replace("admins: []", "admins: ['@acme/admins']"))
    assert run_gitops("codeowners", "--write", cwd=root).exit_code == 0
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "protect production")
    assert run_gitops("check", cwd=root).exit_code == 0
    return root, _git(root, "rev-parse", "HEAD")


def _changes(root: Path, base: str) -> list[dict]:
    res = run_gitops("approvals", "--base", base, "--json", cwd=root)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["changes"]


CASES = [
    ("classification fallback", lambda r: _yaml(r, MODEL_FILE, lambda d: d["classification"].update(fallback="5")),
     MODEL_FILE, "closure", "the task block changed (fallback)"),
    ("classification extract rule", lambda r: _yaml(r, MODEL_FILE, lambda d: d["classification"].update(
        extract={"5": {"regex": "."}})), MODEL_FILE, "closure", "the task block changed (extract)"),
    ("production's record: its config copy", lambda r: _yaml(r, MODEL_FILE, lambda d: d["versions"]["v1"][
        "config"]["generation"].update(temperature=2.0)), MODEL_FILE, "closure", "version v1 changed (config)"),
    ("production's prompt file", lambda r: _append(r, f"models/{MODEL}/v1.prompt.yaml", "# edited\n"),
     f"models/{MODEL}/v1.prompt.yaml", "closure", f"prompt config of {MODEL}@v1 changed"),
    ("the base version's record", lambda r: _yaml(r, BASE_FILE, lambda d: d["versions"]["v1"].update(
        md5="0" * 32 + ".dir")), BASE_FILE, "closure", "version v1 changed (md5)"),
    ("the base version's weights pointer", lambda r: _append(r, f"models/{BASE}/v1.dvc", "# edited\n"),
     f"models/{BASE}/v1.dvc", "closure", f"weights pointer or prompt config of {BASE}@v1 changed"),
    ("the retrieval data set's rows", lambda r: _yaml(r, DATASET_FILE, lambda d: d["versions"]["v1"].update(
        rows=400)), DATASET_FILE, "closure", "data set 'reviews': version v1 changed (rows)"),
    ("the data set's split rule", lambda r: _yaml(r, DATASET_FILE, lambda d: d.update(
        splits={"train": 0.5, "valid": 0.1, "test": 0.4})), DATASET_FILE, "closure", "its splits changed"),
    ("data.dvc without a new version", lambda r: (r / "data.dvc").write_text(
        (r / "data.dvc").read_text().replace("md5: ", "md5: 0", 1)), "data.dvc", "closure",
     "no data set version was added"),
    ("the DVC remote", lambda r: (r / ".dvc/config").write_text((r / ".dvc/config").read_text().replace(
        "url = ", "url = https://evil.example/dvc#")), ".dvc/config", "admin", "changed"),
    ("a deploy hook", lambda r: (r / "gitops.yaml").write_text((r / "gitops.yaml").read_text().replace(
        "hooks: []", "hooks: [{name: h, url: 'https://x.example/h'}]")), "gitops.yaml", "admin", "deploy changed"),
    ("production moved", lambda r: (r / f"registry/{MODEL}/aliases/production.yaml").write_text("version: v1\n"
                                                                                                 "note: again\n"),
     f"registry/{MODEL}/aliases/production.yaml", "alias", "protected alias 'production' of 'ratings' changed"),
    ("production unprotected", lambda r: _yaml(r, MODEL_FILE, lambda d: d.pop("protected")), MODEL_FILE, "admin",
     "protected changed"),
]


def test_each_change_to_productions_closure_is_listed(repo: tuple[Path, str]) -> None:
    root, base = repo
    for name, change, path, kind, words in CASES:
        change(root)
        found = [c for c in _changes(root, base) if c["path"] == path and c["kind"] == kind]
        assert found and any(words in c["what"] for c in found), (name, _changes(root, base))
        if kind != "admin":
            assert all(c["aliases"] == [PROD] and c["owners"] == ["@acme/mlops"] for c in found), (name, found)
        else:
            assert all(c["owners"] == ["@acme/admins"] for c in found), (name, found)
        _git(root, "checkout", "-q", "--", ".")


def test_what_production_does_not_compute_with_needs_nobody(repo: tuple[Path, str], tmp_path: Path) -> None:
    root, base = repo
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"id": f"n{i}", "text": f"fine {i}", "rating": "3"}) + "\n" for i in range(8)))
    zero = write_prompt(tmp_path / "zero.yaml", template="{task}\n{sample}\nRating:", retrieval=None, example=None,
                        dataset=None)
    for args in (("ingest", str(more), "--dataset", DATA),  # a new data set version: data.dvc grows honestly
                 ("prompt", "add", MODEL, "--config", str(zero)), ("alias", "set", MODEL, "staging", "v2")):
        assert run_gitops(*args, cwd=root).exit_code == 0, args
    _yaml(root, MODEL_FILE, lambda d: d.update(description="rates reviews"))
    assert _changes(root, base) == []
    res = run_gitops("approvals", "--base", base, cwd=root)
    assert res.exit_code == 0 and f"Nothing between {base} and the work tree needs approval." in res.stdout


def test_the_text_output_and_check_base_name_owners_and_aliases(repo: tuple[Path, str]) -> None:
    root, base = repo
    CASES[0][1](root)
    res = run_gitops("approvals", "--base", base, cwd=root)
    assert res.exit_code == 0, res.stderr
    assert (f"{MODEL_FILE}: the task block changed (fallback): the prompts and labels of every version of the "
            f"model; it can change what {PROD} computes, so their owners approve (@acme/mlops)") in res.stdout
    assert "1 change between" in res.stdout
    res = run_gitops("check", "--base", base, cwd=root)
    assert res.exit_code == 1  # production's version was added with the old block (tests/test_task_block.py)
    _git(root, "checkout", "-q", "--", ".")
    (root / ".dvc/config").write_text((root / ".dvc/config").read_text() + "# a comment\n")
    res = run_gitops("check", "--base", base, cwd=root)
    assert res.exit_code == 0 and "1 change since" in res.stdout and ".dvc/config: changed" in res.stdout, res.stdout


def test_usage(repo: tuple[Path, str]) -> None:
    root, base = repo
    for args in ((), ("--pr", "1", "--base", base), ("--pr", "1", "--json")):
        res = run_gitops("approvals", *args, cwd=root)
        assert res.exit_code == 2 and "Traceback" not in res.stderr, args

