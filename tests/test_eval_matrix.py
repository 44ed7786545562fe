"""``gitops diff``'s evaluation matrix is bounded by what GitHub runs (issue 17, item 8).

GitHub runs at most 256 jobs of one matrix and fails the whole workflow beyond that, so a pull
request appending 1,000 versions must not emit a matrix of 1,000 jobs: the candidates an alias
moved to come first (protected ones first), then new versions, up to 256; the rest are listed as
not evaluated. More alias-move candidates than that is one sentence, exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_gitops

MD5 = "0123456789abcdef0123456789abcdef.dir"
HEAD = "name: m\ndescription: d\nowners: ['@acme/ml']\nprotected:\n  production: ['@acme/mlops']\nversions:\n"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _write(root: Path, versions: int, aliases: dict[str, str]) -> str:
    model = root / "registry" / "m"
    (model / "aliases").mkdir(parents=True, exist_ok=True)
    body = "".join(f"  v{i}: {{format: hf, path: models/m/v{i}, md5: {MD5}}}\n" for i in range(1, versions + 1))
    (model / "model.yaml").write_text(HEAD + body)
    for alias, version in aliases.items():
        (model / "aliases" / f"{alias}.yaml").write_text(f"version: {version}\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", f"{versions} versions")
    return _git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-qb", "main")
    return root


def test_a_thousand_new_versions_give_at_most_256_jobs(repo: Path, tmp_path: Path, monkeypatch) -> None:
    base = _write(repo, 1, {"production": "v1"})
    head = _write(repo, 1001, {"production": "v1", "staging": "v1000", "canary": "v7"})
    res = run_gitops("diff", base, head, "--json", cwd=repo)
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    refs = [e["ref"] for e in data["evaluate"]]
    assert len(refs) == 256 and len(set(refs)) == 256
    assert refs[:2] == ["m@v7", "m@v1000"]  # what an alias moved to comes first
    assert refs[2:5] == ["m@v2", "m@v3", "m@v4"]
    assert len(data["not_evaluated"]) == 1000 - 256 and data["not_evaluated"][0] == "m@v257"
    assert "evaluates 256 of 1,000 candidates" in res.stderr and "m@v257" in res.stderr
    out = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert run_gitops("diff", base, head, "--github-output", cwd=repo).exit_code == 0
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert outputs["count"] == "256" and len(json.loads(outputs["matrix"])) == 256


def test_more_alias_moves_than_a_matrix_holds_is_one_sentence(repo: Path, tmp_path: Path, monkeypatch) -> None:
    base = _write(repo, 1, {"production": "v1"})
    head = _write(repo, 301, {f"a{i}": f"v{i + 1}" for i in range(300)})
    out = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    for args in (("--json",), ("--github-output",)):
        res = run_gitops("diff", base, head, *args, cwd=repo)
        assert res.exit_code == 1 and "Traceback" not in res.stderr
        (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert "moves aliases to 300 versions" in line and "at most 256" in line and "split" in line, line
    assert not out.exists() or out.read_text() == ""  # nothing half-written for the workflow to act on
    assert os.environ["GITHUB_OUTPUT"] == str(out)
