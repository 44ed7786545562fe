"""The registry loop on real git history and real DVC with a local remote."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.conftest import run_gitops

MODEL = "review-autocomplete"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def test_init_makes_a_working_gitops_repo(gitops_repo: Path, tmp_path: Path) -> None:
    for rel in ("gitops.yaml", ".github/CODEOWNERS", ".dvc/config", "registry/datasets"):
        assert (gitops_repo / rel).exists(), rel
    assert str(tmp_path / "remote") in (gitops_repo / ".dvc/config").read_text()
    assert git(gitops_repo, "status", "--porcelain") == ""
    # the same audited workflow files this repository runs (tests/test_workflows.py audits them)
    shipped = Path(__file__).resolve().parents[1] / "gitops" / "scaffold" / "workflows"
    written = sorted(p.name for p in (gitops_repo / ".github" / "workflows").glob("*.yml"))
    assert written == sorted(p.name for p in shipped.glob("*.yml")) and len(written) == 6  # pages.yml too
    for name in written:
        assert (gitops_repo / ".github/workflows" / name).read_text() == (shipped / name).read_text()
    again = run_gitops("init", str(gitops_repo))
    assert again.exit_code == 1 and "already a GitOps repository" in again.stderr


def test_register_alias_show_diff_history_check(gitops_repo: Path, tmp_path: Path, weights) -> None:
    r = run_gitops("model", "create", MODEL, "--description", "review auto-suggest",
                   "--protect", "production=@acme/mlops", cwd=gitops_repo)
    assert r.exit_code == 0, r.stderr
    base = git(gitops_repo, "rev-parse", "HEAD").strip()
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], check=True)
    git(gitops_repo, "remote", "add", "origin", str(tmp_path / "origin.git"))

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"eval_loss": 2.5, "perplexity": 12.2}))
    r = run_gitops("register", MODEL, str(weights()), "--metrics", str(metrics), "--push", cwd=gitops_repo)
    assert r.exit_code == 0, r.stderr
    assert "Registered review-autocomplete@v1" in r.stdout
    r = run_gitops("register", MODEL, str(weights()), "--format", "peft-lora", "--parent", "v1",
                   "--base-model", "tiny-opt", cwd=gitops_repo)
    assert r.exit_code == 0, r.stderr

    # one .dvc per version; weights are git-ignored; the remote holds v1 (pushed)
    for v in ("v1", "v2"):
        assert (gitops_repo / f"models/{MODEL}/{v}.dvc").exists()
    assert "/v1" in (gitops_repo / f"models/{MODEL}/.gitignore").read_text()
    assert any((tmp_path / "remote").rglob("*")), "dvc push reached the local remote"
    assert git(tmp_path / "origin.git", "log", "--format=%s", "-1", "main").startswith("register")
    assert git(gitops_repo, "status", "--porcelain") == ""

    assert run_gitops("alias", "set", MODEL, "production", "v1", cwd=gitops_repo).exit_code == 0
    mid = git(gitops_repo, "rev-parse", "HEAD").strip()
    assert run_gitops("alias", "set", MODEL, "staging", "v2", "--note", "fresher data",
                      cwd=gitops_repo).exit_code == 0
    assert run_gitops("alias", "set", MODEL, "production", "v2", cwd=gitops_repo).exit_code == 0

    shown = json.loads(run_gitops("show", "--json", cwd=gitops_repo).stdout)
    assert shown["models"][0]["aliases"] == {"production": "v2", "staging": "v2"}
    assert shown["models"][0]["versions_count"] == 2
    one = json.loads(run_gitops("show", f"{MODEL}@production", "--json", cwd=gitops_repo).stdout)
    assert one["id"] == "v2" and one["parent"] == "v1" and one["format"] == "peft-lora"
    v1 = json.loads(run_gitops("show", f"{MODEL}@v1", "--json", cwd=gitops_repo).stdout)
    assert v1["metrics"] == {"eval_loss": 2.5, "perplexity": 12.2}
    assert v1["author"].startswith("Ada Tester") and len(v1["commit"]) == 40

    d = json.loads(run_gitops("diff", mid, "HEAD", "--json", cwd=gitops_repo).stdout)
    moves = {(m["alias"], m["old"], m["new"], m["protected"]) for m in d["alias_moves"]}
    assert moves == {("staging", None, "v2", False), ("production", "v1", "v2", True)}
    assert d["new_versions"] == []
    d0 = json.loads(run_gitops("diff", base, "HEAD", "--json", cwd=gitops_repo).stdout)
    assert [v["version"] for v in d0["new_versions"]] == ["v1", "v2"]
    matrix = {e["ref"]: e for e in d0["evaluate"]}
    assert set(matrix) == {f"{MODEL}@v1", f"{MODEL}@v2"}
    assert matrix[f"{MODEL}@v2"]["alias"] == "production"  # protected first, evaluated once
    assert sorted(matrix[f"{MODEL}@v2"]["aliases"]) == ["production", "staging"]

    out_file = tmp_path / "github_output"
    os.environ["GITHUB_OUTPUT"] = str(out_file)
    try:
        assert run_gitops("diff", base, "HEAD", "--github-output", cwd=gitops_repo).exit_code == 0
    finally:
        del os.environ["GITHUB_OUTPUT"]
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    assert json.loads(outputs["matrix"]) == d0["evaluate"] and outputs["count"] == "2"
    assert json.loads(outputs["new_versions"]) == [f"{MODEL}@v1", f"{MODEL}@v2"]

    h = json.loads(run_gitops("history", MODEL, "production", "--json", cwd=gitops_repo).stdout)
    assert [(e["old"], e["new"]) for e in h] == [("v1", "v2"), (None, "v1")]
    assert h[0]["author"] == "Ada Tester"
    text = run_gitops("history", MODEL, cwd=gitops_repo).stdout
    assert "staging" in text and "none -> v2" in text

    ok = run_gitops("check", "--base", base, cwd=gitops_repo)
    assert ok.exit_code == 0, ok.stderr


def test_check_reports_every_problem_at_once(gitops_repo: Path, weights) -> None:
    run_gitops("model", "create", MODEL, "--protect", "production=@acme/mlops", cwd=gitops_repo)
    run_gitops("register", MODEL, str(weights()), cwd=gitops_repo)
    run_gitops("register", MODEL, str(weights()), cwd=gitops_repo)
    base = git(gitops_repo, "rev-parse", "HEAD").strip()

    model_yaml = gitops_repo / f"registry/{MODEL}/model.yaml"
    text = model_yaml.read_text()
    # tamper with a released version, drop v2's pointer, break CODEOWNERS
    model_yaml.write_text(text.replace("format: hf", "format: ct2", 1))
    (gitops_repo / f"models/{MODEL}/v2.dvc").unlink()
    (gitops_repo / ".github/CODEOWNERS").write_text("# emptied\n")
    (gitops_repo / f"registry/{MODEL}/aliases").mkdir(exist_ok=True)
    (gitops_repo / f"registry/{MODEL}/aliases/canary.yaml").write_text("version: v9\n")

    r = run_gitops("check", "--base", base, cwd=gitops_repo)
    assert r.exit_code == 1
    err = r.stderr
    assert "v9, which does not exist" in err
    assert "v2.dvc is missing" in err
    assert "version v1 changed (format)" in err
    # with a broken alias file, CODEOWNERS is not judged; fix it and CODEOWNERS shows up
    (gitops_repo / f"registry/{MODEL}/aliases/canary.yaml").unlink()
    r = run_gitops("check", "--base", base, cwd=gitops_repo)
    assert "CODEOWNERS is out of sync" in r.stderr and "3 problems" in r.stderr


def test_check_catches_md5_disagreement_and_removed_version(gitops_repo: Path, weights) -> None:
    run_gitops("model", "create", MODEL, cwd=gitops_repo)
    run_gitops("register", MODEL, str(weights()), cwd=gitops_repo)
    base = git(gitops_repo, "rev-parse", "HEAD").strip()
    pointer = gitops_repo / f"models/{MODEL}/v1.dvc"
    pointer.write_text(re.sub(r"md5: [0-9a-f]{32}", "md5: " + "0" * 32, pointer.read_text()))
    r = run_gitops("check", cwd=gitops_repo)
    assert r.exit_code == 1 and "md5 " in r.stderr and "disagrees with models/review-autocomplete/v1.dvc" in r.stderr
    git(gitops_repo, "checkout", "--", ".")
    model_yaml = gitops_repo / f"registry/{MODEL}/model.yaml"
    model_yaml.write_text(model_yaml.read_text().split("versions:")[0] + "versions:\n")
    r = run_gitops("check", "--base", base, cwd=gitops_repo)
    assert r.exit_code == 1 and "version v1 was removed" in r.stderr


def test_register_appends_without_rewriting_people_s_comments(gitops_repo: Path, weights) -> None:
    run_gitops("model", "create", MODEL, cwd=gitops_repo)
    model_yaml = gitops_repo / f"registry/{MODEL}/model.yaml"
    model_yaml.write_text("# owned by the reviews team\n" + model_yaml.read_text())
    git(gitops_repo, "commit", "-qam", "comment")
    run_gitops("register", MODEL, str(weights()), cwd=gitops_repo)
    diff = git(gitops_repo, "show", "--format=", "--", f"registry/{MODEL}/model.yaml")
    assert "# owned by the reviews team" in model_yaml.read_text()
    assert not [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]


def test_history_reads_pr_numbers_from_merge_commits(gitops_repo: Path, weights) -> None:
    run_gitops("model", "create", MODEL, cwd=gitops_repo)
    run_gitops("register", MODEL, str(weights()), cwd=gitops_repo)
    git(gitops_repo, "checkout", "-qb", "promote")
    run_gitops("alias", "set", MODEL, "production", "v1", cwd=gitops_repo)
    git(gitops_repo, "checkout", "-q", "main")
    git(gitops_repo, "merge", "--no-ff", "-q", "promote", "-m", "Merge pull request #42 from acme/promote")
    events = json.loads(run_gitops("history", MODEL, "--json", cwd=gitops_repo).stdout)
    assert len(events) == 1 and events[0]["pr"] == 42 and events[0]["new"] == "v1"


def test_codeowners_write_and_check(gitops_repo: Path) -> None:
    run_gitops("model", "create", MODEL, "--protect", "production=@acme/mlops", cwd=gitops_repo)
    assert run_gitops("codeowners", "--check", cwd=gitops_repo).exit_code == 0
    model_yaml = gitops_repo / f"registry/{MODEL}/model.yaml"
    model_yaml.write_text(model_yaml.read_text().replace("'@acme/mlops'", "'@acme/admins'"))
    r = run_gitops("codeowners", "--check", cwd=gitops_repo)
    assert r.exit_code == 1 and "out of date" in r.stderr
    assert run_gitops("codeowners", "--write", cwd=gitops_repo).exit_code == 0
    owners = (gitops_repo / ".github/CODEOWNERS").read_text()
    assert f"/registry/{MODEL}/aliases/production.yaml @acme/admins" in owners
    assert run_gitops("check", cwd=gitops_repo).exit_code == 0


def test_check_remote_names_versions_missing_from_the_dvc_remote(gitops_repo: Path, weights) -> None:
    run_gitops("model", "create", MODEL, cwd=gitops_repo)
    run_gitops("register", MODEL, str(weights()), cwd=gitops_repo)
    r = run_gitops("check", "--remote", cwd=gitops_repo)
    assert r.exit_code == 1 and "version v1: models/review-autocomplete/v1 is not on the DVC remote" in r.stderr
    assert "1 problem found" in r.stderr
    from gitops.adapters.dvc import Dvc

    Dvc(gitops_repo).push()
    assert run_gitops("check", "--remote", cwd=gitops_repo).exit_code == 0
