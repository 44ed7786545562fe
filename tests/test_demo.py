"""`gitops demo`: the whole loop, offline, on the embedded default, through the real CLI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from gitops.eval.results import EvalResults
from tests.conftest import run_gitops

MODEL = "review-autocomplete"


def test_demo_runs_the_whole_loop_and_keeps_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "demo"
    result = run_gitops("demo", "--keep", str(repo), "--max-steps", "12", "--eval-rows", "30")
    assert result.exit_code == 0, result.stderr
    assert "Demo finished" in result.stdout and "production=v3, staging=v3" in result.stdout
    # the story ends on the live endpoint: asked before and after staging is promoted and deployed
    out = result.stdout
    assert "Live endpoint http://127.0.0.1:" in out and "'The chocolate tour was excellent,'" in out
    assert "before  review-autocomplete@v1: '" in out and "after   review-autocomplete@v3: '" in out
    assert "promoted review-autocomplete@production: v1 -> v3; gitops deploy: HTTP 200 deployed" in out

    shown = json.loads(run_gitops("show", MODEL, "--json", cwd=repo).stdout)
    versions = {v["id"]: v for v in shown["versions"]}
    assert versions["v1"]["dataset"] == "reviews@v1" and versions["v1"]["parent"] is None
    assert versions["v2"]["dataset"] == "reviews@v2" and versions["v2"]["parent"] == "v1"
    # v1 was trained on the embedded base (no registry version: merged hf); v2 on v1: the adapter alone
    assert versions["v1"]["format"] == "hf" and versions["v2"]["format"] == "peft-lora"
    assert versions["v2"]["base_model"] == f"{MODEL}@v1"
    assert versions["v3"]["format"] == "ct2" and versions["v3"]["quantization"] == "int8"
    assert versions["v3"]["parent"] == "v2"
    assert shown["aliases"] == {"production": "v3", "staging": "v3"}

    report = (repo / "report.md").read_text()
    assert report.startswith("<!-- gitops-report model=review-autocomplete")
    assert "@staging" in report and "@v2" in report and "xychart-beta" in report
    for version in ("v3", "v2"):
        res = EvalResults.load(repo / f"results-{version}.json")
        assert res.baseline is not None and res.baseline.version == "v1"
        assert res.candidate.metrics["perplexity"] > 1 and res.samples
    converted = EvalResults.load(repo / "results-v3.json")
    assert converted.parent.version == "v2" and converted.candidate.training_curve == []
    assert "### What the conversion cost: v3 against its parent v2" in report
    assert "int8 cost vs v2: perplexity " in result.stdout

    # the demo pushed what it made to its DVC remote (NAME-dvc-storage beside the repository)
    checked = run_gitops("check", "--remote", cwd=repo)
    assert checked.exit_code == 0 and "The registry is valid." in checked.stdout, checked.stderr
    assert (tmp_path / "demo-dvc-storage" / "files" / "md5").is_dir()
    printed = "\n".join(out.splitlines()[:-2]).strip("\n")  # with --keep: two lines of its own at the end
    assert readme_shape(README_OUTPUT) == readme_shape(printed.splitlines()), f"the README shows:\n{printed}"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True).stdout
    assert "alias review-autocomplete staging: none -> v3" in log
    assert "alias review-autocomplete production: v1 -> v3" in log and "a deploy hook for the demo" in log
    history = json.loads(run_gitops("history", MODEL, "--json", cwd=repo).stdout)
    assert {(e["alias"], e["new"]) for e in history} == {("production", "v1"), ("staging", "v3"),
                                                         ("production", "v3")}
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert len(worktrees.splitlines()) == 1, worktrees  # the server's private worktree is gone

    # the README's next line: the kept repository as pages (gitops site -C demo-repo --out demo-repo/site)
    site = run_gitops("site", "-C", str(repo), "--out", str(repo / "site"))
    assert site.exit_code == 0, site.stderr
    assert MODEL in (repo / "site" / "index.html").read_text(encoding="utf-8")
    page = (repo / "site" / "models" / MODEL / "index.html").read_text(encoding="utf-8")
    assert "Alias timeline (3 moves)" in page and "<svg" in page and "reviews@v2" in page


README = Path(__file__).resolve().parents[1] / "README.md"
README_OUTPUT = re.search(r"What it prints \(.*?\):\n\n```\n(.*?)```", README.read_text(encoding="utf-8"),
                          re.S).group(1).strip("\n").splitlines()[:-1]  # its last line: the run without --keep


def readme_shape(lines: list[str]) -> list[str]:
    """The demo's output with what varies between runs blanked out: numbers, the port, the texts
    the model generates, a gate's verdict; what stays is every word the code prints."""
    out = []
    for line in lines:
        line = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:PORT", line)
        line = re.sub(r"'[^']*'|\"[^\"]*\"", "'TEXT'", line)
        line = re.sub(r"[+-]?\d+(,\d{3})*(\.\d+)?", "N", line).replace("❌", "✅")
        out.append("---" if line and set(line) <= {"-", " "} else " ".join(line.split()))  # table rules
    return "\n".join(out).strip("\n").splitlines()


def test_demo_refuses_a_non_empty_keep_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    result = run_gitops("demo", "--keep", str(tmp_path / "busy"))
    assert result.exit_code == 1 and "not empty" in result.stderr


def test_smollm2_profile_is_a_valid_train_config_that_compares_before_and_after() -> None:
    """The real-model profile's train.yaml passes the train-config validator, and its two
    evaluations are the fine-tuned v2 against the registered base, then the int8 v3 against v2."""
    from gitops.demo.story import BASES, comparisons, train_config
    from gitops.train.train_config import from_dict

    profile = BASES["smollm2"]
    config = from_dict(train_config(profile.max_steps, profile))
    assert config.base_model == "smollm2" and config.trainer.max_steps == profile.max_steps
    assert comparisons(profile) == [(f"{MODEL}@v2", "smollm2-135m-instruct@v1"), (f"{MODEL}@staging", f"{MODEL}@v2")]
    assert run_gitops("demo", "--base", "llama-3").exit_code == 2  # a usage error, before anything is made
