"""``gitops eval`` end to end: real registered versions of every format, real DVC, real data set."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from gitops.eval.results import EvalResults
from tests.conftest import run_gitops
from tests.eval_fixtures import FAST, MODEL, EvalRepo

METRICS = {"loss", "perplexity", "latency_p50_ms", "latency_p95_ms", "tokens_per_s", "size_bytes"}


def _eval(repo: EvalRepo, tmp_path: Path, *args: str):
    out = tmp_path / "results.json"
    result = run_gitops("eval", *args, "--out", str(out), *FAST, cwd=repo.root)
    return result, out


def _check_metrics(metrics: dict, weights: Path) -> None:
    assert set(metrics) >= METRICS
    assert 0 < metrics["loss"] < 20
    assert math.isclose(metrics["perplexity"], math.exp(metrics["loss"]), rel_tol=1e-9)
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"]
    assert metrics["tokens_per_s"] > 0
    assert metrics["size_bytes"] == sum(p.stat().st_size for p in weights.rglob("*") if p.is_file())


def test_eval_reads_the_registry_and_resolves_the_data_set_once(eval_repo, tmp_path, monkeypatch):
    """One ``gitops eval`` (candidate, baseline, gates, data set) parses the registry once, each file
    once, and resolves its data set once: the Workspace is built once and handed to every step."""
    from gitops.core import cache, reader, schema
    from gitops.data import batches

    calls = dict.fromkeys(["parse_texts", "parse_model", "parse_dataset", "resolve"], 0)
    for module, name in ((reader, "parse_texts"), (schema, "parse_model"), (schema, "parse_dataset"),
                         (batches, "resolve")):
        def counting(*args, _real=getattr(module, name), _name=name, **kwargs):  # noqa: B008 - binds this loop's function
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    shutil.rmtree(eval_repo.root / ".git/gitops/cache", ignore_errors=True)  # nothing parsed before:
    cache.MEMORY.clear()  # a new process, a cold clone
    result, _ = _eval(eval_repo, tmp_path, f"{MODEL}@v2")  # against @production, on its data set
    assert result.exit_code == 0, result.stderr
    assert calls == {"parse_texts": 1, "parse_model": 1, "parse_dataset": 1, "resolve": 1}


def test_peft_lora_candidate_against_hf_production(eval_repo, tmp_path):
    result, out = _eval(eval_repo, tmp_path, f"{MODEL}@v2")
    assert result.exit_code == 0, result.stderr
    assert "against review-autocomplete@production" in result.stderr
    assert "data set: reviews@latest" in result.stderr
    doc = EvalResults.load(out)
    assert doc.dataset.ref == "reviews@v1" and doc.dataset.split == "test"
    assert 0 < doc.dataset.rows <= 40
    assert (doc.candidate.format, doc.candidate.version) == ("peft-lora", "v2")
    assert (doc.baseline.format, doc.baseline.version) == ("hf", "v1")
    assert doc.candidate.lineage.parent == "v1" and doc.candidate.md5.endswith(".dir")
    _check_metrics(doc.candidate.metrics, eval_repo.root / f"models/{MODEL}/v2")
    _check_metrics(doc.baseline.metrics, eval_repo.root / f"models/{MODEL}/v1")
    # the adapter moved the weights: the two models do not score the holdout identically
    assert doc.candidate.metrics["loss"] != doc.baseline.metrics["loss"]
    assert len(doc.samples) == doc.generation.samples == 4
    for s in doc.samples:
        assert len(s.prompt.split()) == 6 and s.reference and s.baseline is not None
    assert [(g.metric, g.bound, g.passed, g.skipped) for g in doc.gates] == [
        ("perplexity", "max_increase_pct", True, False), ("latency_p95_ms", "max", True, False)]
    assert doc.verdict == "pass"
    assert json.loads(out.read_text())["schema_version"] == 2
    assert doc.parent is None and [c.against for c in doc.comparisons] == ["baseline"]  # trained: no parent
    loss = doc.comparison("baseline").deltas["loss"]
    assert loss.delta == pytest.approx(doc.candidate.metrics["loss"] - doc.baseline.metrics["loss"])
    assert (loss.unit, loss.units) == ("rows", doc.dataset.rows) and loss.low <= loss.delta <= loss.high
    assert doc.environment.threads == 1  # FAST passes --threads 1
    report = run_gitops("report", str(out), cwd=eval_repo.root)
    assert report.exit_code == 0, report.stderr
    assert "review-autocomplete@v2" in report.stdout and doc.samples[0].prompt.split()[0] in report.stdout


def test_ct2_candidate_is_compared_with_its_parent_and_shows_no_curve(eval_repo, tmp_path):
    """v3 is the int8 conversion of v1: against production (v2 here) and against its parent v1, on the
    same rows with the same settings; it was never trained, so it has no curve, though v1 has one."""
    result, out = _eval(eval_repo, tmp_path, f"{MODEL}@v3", "--baseline", f"{MODEL}@v2")
    assert result.exit_code == 0, result.stderr
    assert "parent: review-autocomplete@v1 (v3 is a ct2 conversion of it" in result.stderr
    assert "parent loss" in result.stderr  # its own measurement (progress stage)
    doc = EvalResults.load(out)
    assert (doc.candidate.format, doc.candidate.quantization) == ("ct2", "int8")
    _check_metrics(doc.candidate.metrics, eval_repo.root / f"models/{MODEL}/v3")
    assert (doc.parent.ref, doc.parent.version, doc.parent.format) == (f"{MODEL}@v1", "v1", "hf")
    _check_metrics(doc.parent.metrics, eval_repo.root / f"models/{MODEL}/v1")
    # the int8 conversion of v1 scores the same rows close to v1 itself (CTranslate2's score_batch)
    assert math.isclose(doc.candidate.metrics["loss"], doc.parent.metrics["loss"], rel_tol=0.1)
    vs_parent = doc.comparison("parent").deltas
    assert vs_parent["size_bytes"].method == "exact" and vs_parent["size_bytes"].delta < 0
    assert vs_parent["perplexity"].delta == pytest.approx(
        doc.candidate.metrics["perplexity"] - doc.parent.metrics["perplexity"])
    assert vs_parent["perplexity"].low <= vs_parent["perplexity"].delta <= vs_parent["perplexity"].high
    assert doc.comparison("baseline").version == "v2"
    assert doc.parent.training_curve[-1].step == 20  # v1's own curve, read from its directory
    assert doc.candidate.training_curve == []
    assert not (eval_repo.root / f"models/{MODEL}/v3/loss_curve.json").exists()
    assert "CTranslate2 int8 conversion of v1, not trained." in (
        eval_repo.root / f"models/{MODEL}/v3/README.md").read_text()
    report = run_gitops("report", str(out), cwd=eval_repo.root)
    assert report.exit_code == 0, report.stderr
    assert "### What the conversion cost: v3 against its parent v1" in report.stdout
    assert "v3 is a CTranslate2 int8 conversion of v1, not trained" in report.stdout
    assert "Training curve" not in report.stdout and "xychart" not in report.stdout
    assert all(s.candidate is not None and s.baseline is not None for s in doc.samples)


def test_a_parent_that_is_the_baseline_is_measured_once(eval_repo, tmp_path):
    result, out = _eval(eval_repo, tmp_path, f"{MODEL}@v3", "--baseline", f"{MODEL}@production")
    assert result.exit_code == 0, result.stderr
    assert "parent loss" not in result.stderr  # no progress stage for a parent: the baseline's numbers serve
    doc = EvalResults.load(out)
    assert doc.baseline.version == doc.parent.version == "v1" and doc.parent.ref == f"{MODEL}@v1"
    assert doc.parent.metrics == doc.baseline.metrics
    assert doc.comparison("parent").deltas == doc.comparison("baseline").deltas
    quiet, out2 = _eval(eval_repo, tmp_path, f"{MODEL}@v3", "--no-baseline", "--no-parent")
    assert quiet.exit_code == 0, quiet.stderr
    assert EvalResults.load(out2).parent is None and EvalResults.load(out2).comparisons == []


def test_production_itself_has_no_default_baseline(eval_repo, tmp_path):
    result, out = _eval(eval_repo, tmp_path, f"{MODEL}@production")
    assert result.exit_code == 0, result.stderr
    assert "no baseline: the candidate is review-autocomplete@production itself" in result.stderr
    doc = EvalResults.load(out)
    assert doc.baseline is None and doc.alias == "production"
    assert all(s.baseline is None for s in doc.samples)
    assert doc.gates[0].skipped and doc.gates[0].passed  # relative gate: nothing to compare with


def test_tampered_weights_are_refused(eval_repo, tmp_path):
    target = eval_repo.root / f"models/{MODEL}/v2/adapter_config.json"
    original, mode = target.read_bytes(), target.stat().st_mode
    target.chmod(0o644)  # DVC makes linked (hardlink cache) files read-only
    try:
        target.write_bytes(original + b"\n")
        result, out = _eval(eval_repo, tmp_path, f"{MODEL}@v2", "--no-baseline")
    finally:
        target.write_bytes(original)
        target.chmod(mode)
    assert result.exit_code == 1
    assert "do not match the md5 the registry records" in result.stderr
    assert f"models/{MODEL}/v2" in result.stderr
    assert not out.exists()


def test_a_fresh_clone_pulls_weights_and_data_through_dvc(eval_repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(eval_repo.root), str(clone)], check=True)
    assert not (clone / f"models/{MODEL}/v3").exists()
    out = tmp_path / "results.json"
    result = run_gitops("eval", f"{MODEL}@v3", "--no-baseline", "--out", str(out), *FAST, cwd=clone)
    assert result.exit_code == 0, result.stderr
    assert (clone / f"models/{MODEL}/v3/model.bin").is_file()
    doc = EvalResults.load(out)
    from gitops.core.workspace import Workspace

    assert doc.candidate.md5 == Workspace(clone).registry().resolve(f"{MODEL}@v3")[1].md5
    assert doc.dataset.ref == "reviews@v1" and doc.dataset.rows > 0


def test_failed_gate_exits_3_after_writing_results(eval_repo, tmp_path):
    model_yaml = eval_repo.root / "registry" / MODEL / "model.yaml"
    original = model_yaml.read_text()
    try:
        model_yaml.write_text(original.replace("max: 60000", "max: 0.001"))
        result, out = _eval(eval_repo, tmp_path, f"{MODEL}@v3", "--no-baseline")
    finally:
        model_yaml.write_text(original)
    assert result.exit_code == 3, result.stderr
    assert "1 gate(s) failed: latency_p95_ms at most 0.001: " in result.stderr
    doc = EvalResults.load(out)
    assert doc.verdict == "fail"
    [failed] = doc.failed_gates
    assert (failed.metric, failed.bound, failed.threshold) == ("latency_p95_ms", "max", 0.001)
    assert failed.candidate == doc.candidate.metrics["latency_p95_ms"]
    report = run_gitops("report", str(out), "--check", cwd=eval_repo.root)
    assert report.exit_code == 3
    assert "latency_p95_ms" in report.stdout


def test_unknown_dataset_and_missing_recorded_dataset(eval_repo, weights, tmp_path):
    result, _out = _eval(eval_repo, tmp_path, f"{MODEL}@v1", "--dataset", "nope@latest")
    assert result.exit_code == 1 and "data set 'nope' does not exist" in result.stderr
    result = run_gitops("eval", "other@v1", cwd=eval_repo.root)
    assert result.exit_code == 1 and "model 'other' does not exist" in result.stderr


def test_version_without_dataset_asks_for_one(eval_repo, weights, monkeypatch):
    from gitops import api

    root = eval_repo.root
    monkeypatch.chdir(root)
    api.create_model(api.Workspace(root), "nodata")
    api.register(api.Workspace(root), "nodata", weights())
    result = run_gitops("eval", "nodata@v1", cwd=root)
    assert result.exit_code == 1
    assert "nodata@v1 records no data set; choose one with --dataset NAME@latest" in result.stderr


@pytest.mark.parametrize("bad", ["--samples=-1", "--max-new-tokens=0", "--device=tpu"])
def test_bad_options_are_usage_errors(eval_repo, bad):
    assert run_gitops("eval", f"{MODEL}@v1", bad, cwd=eval_repo.root).exit_code == 2


def test_cuda_without_a_gpu_is_one_sentence(eval_repo, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result, out = _eval(eval_repo, tmp_path, f"{MODEL}@v1", "--no-baseline", "--device", "cuda")
    assert result.exit_code == 1
    assert "--device cuda was asked for, but torch sees no CUDA device on this machine" in result.stderr
    assert not out.exists()


def test_a_library_plan_is_measured_as_planned_even_when_its_alias_moves(eval_repo, monkeypatch):
    """``api.evaluate(ws, plan, options)``: the document names the plan's split, data set version and
    pinned versions, and nothing in the run looks a side up again, so an alias moved between the plan
    and the run changes nothing (the plan is a library caller's only way to say what to measure)."""
    from gitops import api
    from gitops.core.reader import Registry
    from gitops.core.refs import Ref

    monkeypatch.chdir(eval_repo.root)
    ws = api.Workspace(eval_repo.root)
    plan = api.plan_eval(ws, f"{MODEL}@production", baseline=f"{MODEL}@v2", split="train")
    assert (plan.candidate.ref, plan.baseline.ref, plan.alias) == (Ref(MODEL, "v1"), Ref(MODEL, "v2"), "production")
    api.set_alias(ws, MODEL, "production", "v2")  # moved after planning: the plan measures v1 still
    looked_up: list[object] = []

    def refused(self: object, ref: object) -> None:
        looked_up.append(ref)
        raise AssertionError(f"{ref} looked up again after planning")

    try:
        with monkeypatch.context() as mp:
            mp.setattr(Registry, "resolve", refused)
            doc = api.evaluate(ws, plan, api.EvalOptions(max_rows=6, samples=1, max_new_tokens=2, batch_size=8,
                                                         threads=1))
    finally:
        api.set_alias(api.Workspace(eval_repo.root), MODEL, "production", "v1")
    assert looked_up == []
    assert (doc.candidate.version, doc.baseline.version) == ("v1", "v2")
    assert (doc.candidate.ref, doc.alias) == (f"{MODEL}@production", "production")
    assert (doc.dataset.ref, doc.dataset.split) == (plan.dataset_ref, "train") and 0 < doc.dataset.rows <= 6
