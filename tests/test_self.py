"""This repository is itself a GitOps repo: its registry is valid and a clone reads its data via DVC."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import run_gitops

ROOT = Path(__file__).resolve().parents[1]


def test_this_repository_is_a_valid_gitops_repo() -> None:
    result = run_gitops("check", cwd=ROOT)
    assert result.exit_code == 0, result.stderr
    shown = json.loads(run_gitops("show", "--json", cwd=ROOT).stdout)
    assert [m["name"] for m in shown["models"]] == ["review-autocomplete"]
    assert shown["models"][0]["protected"] == {"production": ["@gitops-dev/mlops"]}
    assert [(d["name"], d["latest"]) for d in shown["datasets"]] == [("reviews", "v1")]
    assert run_gitops("codeowners", "--check", cwd=ROOT).exit_code == 0


def test_the_code_that_runs_the_required_check_is_code_owned() -> None:
    """This repository holds the toolkit, so a pull request could rewrite the approvals check, the
    build or the CI scripts: CODEOWNERS gives them, and the machinery, to the admins."""
    from gitops.registry.codeowners_rules import parse

    owners = parse((ROOT / ".github" / "CODEOWNERS").read_text())
    for path in ("gitops/github/approvals.py", "gitops/cli/github.py", "pyproject.toml", ".ci/run",
                 ".github/workflows/registry-check.yml", ".github/actions/x/action.yml", ".github/CODEOWNERS",
                 "gitops.yaml"):
        assert owners.owners_of(path) == ["@gitops-dev/mlops"], path
    assert owners.owners_of("registry/review-autocomplete/aliases/staging.yaml") == []


def test_a_fresh_clone_reads_the_data_set_through_dvc(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / "data").exists()  # data lives on the DVC remote, not in git
    from gitops import api

    rows = api.read_rows(api.Workspace(clone), "reviews@v1", "test")
    assert len(rows) == 144 and {r["split"] for r in rows} == {"test"}
    assert all(r["text"] and isinstance(r["rating"], int) for r in rows)
