"""A classification report that tells the truth (issue 20, item 2): ✅ only when gates exist, pass and
the candidate's accuracy is not significantly worse than the baseline's; ⚪ without gates; a gate
judged on the interval (``significant: true``, a classification model's default); the variants
table with macro-F1, log loss, ECE and the majority-class row; a flag with three raw outputs for a
variant whose outputs mostly matched no label. Documents are built from prediction rows by the
functions ``gitops eval`` uses (tests/report_fixtures_cls.py), so no number is typed in by hand."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gitops.core.schema import Gate
from gitops.eval.gates import evaluate_gates
from gitops.eval.results import Delta, EvalResults
from gitops.predict import evaluation, scoring
from gitops.report.render import render_report
from tests.report_fixtures import check_markdown
from tests.report_fixtures_cls import LABELS, classification_results, predictions

WORSE = ([1] * 24 + [0] * 6, [1] * 30)           # 80% against 100%, on 30 paired rows: significantly worse
LEVEL = ([1, 0] * 15, [0, 1] * 15)               # 50% against 50%: no significant change
DEFAULT = Gate("accuracy", max_decrease_pct=0, significant=True)


def gated(r: EvalResults, gates: list[Gate]) -> EvalResults:
    deltas = r.comparison("baseline").deltas if r.comparison("baseline") else None
    return dataclasses.replace(r, gates=evaluate_gates(gates, r.candidate.metrics,
                                                       r.baseline.metrics if r.baseline else None, deltas))


def headline(md: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("## ") and "sentiment@" in line)


def test_the_significant_gate_fails_only_a_significantly_worse_candidate() -> None:
    worse = classification_results("v2", "v1", *WORSE)
    d = worse.comparison("baseline").deltas["accuracy"]
    assert d.high < 0                                     # the whole interval below 0
    [failed] = evaluate_gates([DEFAULT], worse.candidate.metrics, worse.baseline.metrics,
                              worse.comparison("baseline").deltas)
    assert not failed.passed and failed.significant
    assert failed.message.startswith("accuracy not significantly below the baseline: change -0.2 [")
    level = classification_results("v2", "v1", *LEVEL)
    [passed] = evaluate_gates([DEFAULT], level.candidate.metrics, level.baseline.metrics,
                              level.comparison("baseline").deltas)
    assert passed.passed and not passed.skipped          # a point value would fail nothing here either
    # a small drop inside the noise: the plain bound fails, the significant one does not
    noisy = {"accuracy": Delta(delta=-0.05, low=-0.2, high=0.1, unit="rows", units=30)}
    cand, base = {"accuracy": 0.75}, {"accuracy": 0.8}
    [plain] = evaluate_gates([Gate("accuracy", max_decrease_pct=0)], cand, base, noisy)
    [judged] = evaluate_gates([DEFAULT], cand, base, noisy)
    assert not plain.passed and judged.passed
    [skipped] = evaluate_gates([DEFAULT], cand, base, {"accuracy": Delta(delta=-0.05)})
    assert skipped.passed and skipped.skipped and "no interval" in skipped.message
    higher = {"log_loss": Delta(delta=0.3, low=0.1, high=0.5, unit="rows", units=30)}
    [loss] = evaluate_gates([Gate("log_loss", max_increase_pct=5, significant=True)], {"log_loss": 1.3},
                            {"log_loss": 1.0}, higher)
    assert not loss.passed and "log_loss not significantly more than 5% above the baseline" in loss.message


def test_headlines_never_show_a_check_mark_for_a_significantly_worse_candidate() -> None:
    worse = classification_results("v2", "v1", *WORSE)
    md = render_report([worse]).markdown               # no gates: neutral, and the warning
    check_markdown(md)
    assert headline(md).startswith("## ⚠️ sentiment@v2: no gates defined, so not judged, but accuracy is "
                                   "significantly worse than the baseline's (-20.0% [")
    only_latency = gated(worse, [Gate("latency_p50_ms", max=1000)])
    md = render_report([only_latency]).markdown        # gates pass, yet accuracy fell: still no ✅
    assert headline(md).startswith("## ⚠️ sentiment@v2: 1/1 gates pass, but accuracy is significantly worse")
    assert only_latency.verdict == "pass"              # the exit code still follows the gates
    default = gated(worse, [DEFAULT])
    assert headline(render_report([default]).markdown).startswith("## ❌ sentiment@v2: 1 of 1 gates failed")
    level = classification_results("v2", "v1", *LEVEL)
    assert headline(render_report([level]).markdown) == ("## ⚪ sentiment@v2: no gates defined, so not judged "
                                                         "against sentiment@v1 (v1)")
    assert headline(render_report([gated(level, [DEFAULT])]).markdown).startswith("## ✅ sentiment@v2: 1/1 gates pass")
    both = render_report([gated(level, [DEFAULT]), only_latency]).markdown
    assert "gitops evaluation: 2 candidates pass their gates or have none, with warnings" in both
    rendered = render_report([level])
    from gitops.cli.report import summary_line

    assert summary_line(rendered, None).startswith("⚪ no gates defined, not judged;")


def with_probabilities(rows: list[dict]) -> list[dict]:
    """Each prediction 70% sure of itself, the rest spread evenly."""
    return [{**r, "probabilities": {label: 0.7 if label == r["prediction"] else 0.15 for label in LABELS}}
            for r in rows]


def test_the_table_adds_f1_log_loss_calibration_the_majority_class_and_flags_invalid_outputs() -> None:
    from gitops.eval.results import ClassificationInfo

    cand = with_probabilities(predictions([1, 0, 0, 0, 0, 1, 0, 0, 0] * 2))
    for i, r in enumerate(cand):                      # most outputs matched no label
        if r["prediction"] != r["label"] and i % 3:
            r.update(matched=False, raw_output=f"the review is long <b>{i}</b>")
    base = with_probabilities(predictions([1, 1, 0] * 6))
    doc = classification_results("v2", "v1", [1] * 18, [1] * 18)
    cs, bs = scoring.score(cand, LABELS), scoring.score(base, LABELS)
    assert cs.invalid_rate > 0.2 and cs.flagged and len(cs.invalid_examples) == 3
    label, majority = scoring.majority_baseline(["neg"] * 5 + ["pos"] * 3, cand, LABELS)
    info = ClassificationInfo(labels=LABELS, rows_md5="x", candidate=evaluation.side_detail("peft-lora", cs),
                              baseline=evaluation.side_detail("zero-shot", bs),
                              majority=evaluation.MajorityBaseline(
                                  label=label, accuracy=majority.accuracy, macro_f1=majority.macro_f1,
                                  macro_accuracy=majority.macro_accuracy, log_loss=majority.log_loss,
                                  ece=majority.ece, accuracy_ci=list(majority.accuracy_ci)))
    doc = dataclasses.replace(
        doc, classification=info,
        candidate=dataclasses.replace(doc.candidate, metrics=evaluation.classification_metrics(cs)),
        baseline=dataclasses.replace(doc.baseline, metrics=evaluation.classification_metrics(bs)),
        comparisons=[evaluation.compare_predictions("baseline", "v1", cand, base, labels=LABELS)])
    again = EvalResults.from_json(doc.to_json())          # the new fields survive the document
    assert again.classification.majority.label == "neg" and again.classification.candidate.invalid_examples
    md = render_report([again]).markdown
    check_markdown(md)
    assert "| variant | kind | accuracy | vs baseline | macro-F1 | log loss | ECE | macro acc. | invalid |" in md
    row = next(line for line in md.splitlines() if line.startswith("| sentiment@v2 |"))
    assert f"| {cs.log_loss:.3f} [" in row and f"{cs.macro_f1:.1%} [" in row and "| ⚠️ " in row
    assert f"| always neg (majority class) | reference | {majority.accuracy:.1%}" in md
    flag = next(line for line in md.splitlines() if line.startswith("⚠️ sentiment@v2 matched no label"))
    shown = flag.split("Three of its raw outputs: ")[1]
    assert shown.count('", "') == 2 and '"the review is long &#60;b&#62;1&#60;/b&#62;"' in shown  # escaped
    assert "<b>" not in flag
    assert doc.comparison("baseline").deltas["log_loss"].low is not None


def test_a_classification_model_is_created_with_the_default_gate(tmp_path: Path) -> None:
    from gitops import api
    from gitops.core.workspace import Workspace
    from tests.conftest import run_gitops

    root = api.init(tmp_path / "repo", remote=str(tmp_path / "remote")).root
    task = tmp_path / "task.yaml"
    task.write_text('input: "{text}"\nlabel: rating\nlabels: ["a", "b"]\nfallback: "a"\n')
    res = run_gitops("model", "create", "ratings", "--task", "classification", "--classification", str(task),
                     cwd=root)
    assert res.exit_code == 0 and "gate: accuracy not significantly below the baseline" in res.stdout
    assert Workspace.open(root).registry().model("ratings").gates == [DEFAULT]
    own = api.create_model(Workspace.open(root), "own", task="classification", classification=task,
                           gates=[{"metric": "accuracy", "min": 0.5}])
    assert own.gates == [Gate("accuracy", min=0.5)]        # its own gates, not the default
    assert api.create_model(Workspace.open(root), "text").gates == []   # a completion model: none
    bad = root / "registry" / "own" / "model.yaml"
    bad.write_text(bad.read_text().replace("min: 0.5", "min: 0.5\n  significant: true"))
    check = run_gitops("check", cwd=root)
    assert check.exit_code == 1 and "significant: true judges a change against the baseline" in check.stderr
    assert json.loads(json.dumps(DEFAULT.to_dict())) == {"metric": "accuracy", "max_decrease_pct": 0,
                                                          "significant": True}
    with pytest.raises(AssertionError):
        assert Gate("accuracy", max_decrease_pct=0) == DEFAULT   # significant is part of the gate
