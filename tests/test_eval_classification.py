"""``gitops eval`` and ``gitops report`` for a classification model (issue 12, items 4 and 6): prompt
versions scored on the toy model through the CLI, accuracy checked against ``gitops predict``'s own
output, a gate on accuracy, the report's compare table for one and several results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gitops.eval.results import EvalResults, ResultsError
from tests.conftest import run_gitops
from tests.prompt_fixtures import DATA, MODEL

ROWS = "6"


def _predicted(repo: Path, ref: str, out: Path) -> list[dict]:
    res = run_gitops("predict", ref, "--dataset", f"{DATA}@v1", "--limit", ROWS, "--out", str(out), cwd=repo)
    assert res.exit_code == 0, res.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_eval_of_a_zero_shot_prompt_against_a_few_shot_baseline(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """v1 (zero-shot) against v2 (few-shot bm25) on the first rows: the document's accuracy is the
    accuracy of gitops predict's output file on the same rows, for both sides."""
    repo, out = toy_ratings_repo, tmp_path / "results.json"
    res = run_gitops("eval", f"{MODEL}@v1", "--baseline", f"{MODEL}@v2", "--dataset", f"{DATA}@v1",
                     "--max-rows", ROWS, "--samples", "3", "--out", str(out), cwd=repo)
    assert res.exit_code == 0, res.stderr
    doc = EvalResults.load(out)
    preds = {v: _predicted(repo, f"{MODEL}@{v}", tmp_path / f"{v}.jsonl") for v in ("v1", "v2")}
    accuracy = {v: sum(p["prediction"] == p["label"] for p in rows) / len(rows) for v, rows in preds.items()}
    assert doc.candidate.metrics["accuracy"] == pytest.approx(accuracy["v1"])
    assert doc.baseline is not None and doc.baseline.metrics["accuracy"] == pytest.approx(accuracy["v2"])
    invalid = sum(not p["matched"] for p in preds["v1"]) / len(preds["v1"])
    assert doc.candidate.metrics["invalid_rate"] == pytest.approx(invalid)
    assert set(doc.candidate.metrics) == {"accuracy", "macro_f1", "log_loss", "ece", "macro_accuracy",
                                          "invalid_rate", "latency_p50_ms", "tokens_per_prediction"}
    import math  # log loss: the mean -ln p(true label) of predict's own probabilities, on the same rows

    losses = [-math.log(p["probabilities"][p["label"]]) for p in preds["v1"]]
    assert doc.candidate.metrics["log_loss"] == pytest.approx(sum(losses) / len(losses))
    assert [g.message.split(":")[0] for g in doc.gates] == ["accuracy not significantly below the baseline"]
    assert (doc.candidate.format, doc.baseline.format, doc.dataset.rows) == ("prompt", "prompt", int(ROWS))
    delta = doc.comparison("baseline").deltas["accuracy"]
    assert delta.delta == pytest.approx(accuracy["v1"] - accuracy["v2"]) and delta.units == int(ROWS)
    assert delta.low is not None and delta.low <= delta.delta <= delta.high
    info = doc.classification
    assert info is not None and info.labels == ["1", "2", "3", "4", "5"]
    assert (info.candidate.kind, info.baseline.kind) == ("zero-shot", "few-shot bm25 k=2")
    assert info.rows_md5 == hashlib.md5("\n".join(p["key"] for p in preds["v1"]).encode()).hexdigest()
    for side, rows in ((info.candidate, preds["v1"]), (info.baseline, preds["v2"])):
        for i, label in enumerate(info.labels):   # row i of the confusion matrix: rows whose true label is i
            assert side.confusion[i] == [sum(p["label"] == label and p["prediction"] == other for p in rows)
                                         for other in info.labels]
    assert [s.reference for s in doc.samples] == [p["label"] for p in preds["v1"][:3]]
    assert [s.candidate for s in doc.samples] == [p["raw_output"] for p in preds["v1"][:3]]
    assert [s.baseline for s in doc.samples] == [p["raw_output"] for p in preds["v2"][:3]]
    assert "accuracy" in res.stdout and "verdict: pass" in res.stdout
    report = run_gitops("report", str(out), cwd=repo)
    assert report.exit_code == 0, report.stderr
    assert "| variant | kind | accuracy | vs baseline |" in report.stdout
    assert f"{accuracy['v1']:.1%}" in report.stdout and "Perplexity" not in report.stdout


def test_a_failing_gate_on_accuracy_exits_3_and_writes_the_document(toy_ratings_repo: Path, tmp_path: Path) -> None:
    repo, out = toy_ratings_repo, tmp_path / "results.json"
    ran = run_gitops("eval", f"{MODEL}@v3", "--no-baseline", "--dataset", f"{DATA}@v1", "--max-rows", "6",
                     "--out", str(out), cwd=repo)
    assert ran.exit_code == 0, ran.stderr
    measured = EvalResults.load(out).candidate.metrics["accuracy"]
    out.unlink()
    _add_gates(repo, f"gates:\n  - metric: accuracy\n    min: {measured + 0.01}\n"
                     "  - metric: invalid_rate\n    max: 1.0\n")
    res = run_gitops("eval", f"{MODEL}@v3", "--no-baseline", "--dataset", f"{DATA}@v1", "--max-rows", "6",
                     "--out", str(out), cwd=repo)
    assert res.exit_code == 3, res.stderr
    assert "1 gate(s) failed: accuracy at least" in res.stderr
    doc = EvalResults.load(out)
    assert doc.verdict == "fail" and doc.candidate.metrics["accuracy"] == measured
    assert [(g.metric, g.passed) for g in doc.gates] == [("accuracy", False), ("invalid_rate", True)]
    assert doc.classification is not None and doc.classification.candidate.kind == "hf"


def _add_gates(root: Path, text: str) -> None:
    from gitops.adapters import git

    path = root / "registry" / MODEL / "model.yaml"
    default = "gates:\n- metric: accuracy\n  max_decrease_pct: 0\n  significant: true\n"
    assert default in path.read_text()   # the default gate of a classification model, replaced here
    head, sep, tail = path.read_text().replace(default, "").partition("versions:")
    path.write_text(head + text + sep + tail)
    git.add(root, [f"registry/{MODEL}/model.yaml"])
    git.commit(root, "gates", [f"registry/{MODEL}/model.yaml"])


def test_bad_input_is_refused_before_any_model_loads(ratings_repo: Path, tmp_path: Path) -> None:
    """ratings-base@v1 holds dummy weights: loading them would fail, so these refusals come first."""
    from tests.conftest import git_state
    from tests.prompt_fixtures import write_prompt

    block = tmp_path / "task4.yaml"
    block.write_text('input: "{text}"\nlabel: rating\nlabels: ["1", "2", "3", "4"]\nfallback: "3"\n')
    for args in (("prompt", "add", MODEL, "--config", str(write_prompt(tmp_path / "p.yaml"))),
                 ("model", "create", "four", "--task", "classification", "--classification", str(block)),
                 ("prompt", "add", "four", "--config", str(write_prompt(tmp_path / "p.yaml")))):
        assert run_gitops(*args, cwd=ratings_repo).exit_code == 0, args
    before, out = git_state(ratings_repo), tmp_path / "results.json"
    res = run_gitops("eval", f"{MODEL}@v1", "--baseline", "four@v1", "--dataset", f"{DATA}@v1", "--out", str(out),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and "the labels 1, 2, 3, 4 do not cover reviews@v1: it has '5'" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists() and git_state(ratings_repo) == before
    res = run_gitops("eval", f"{MODEL}@v1", "--no-baseline", "--dataset", f"{DATA}@v1", "--split", "nope",
                     "--out", str(out), cwd=ratings_repo)
    assert res.exit_code == 1 and "Traceback" not in res.stderr and not out.exists(), res.stderr


def test_old_results_documents_still_load() -> None:
    golden = Path(__file__).parent / "golden" / "results-v3.json"
    text = golden.read_text(encoding="utf-8")
    doc = EvalResults.from_json(text)
    assert doc.classification is None
    assert "classification" not in doc.to_dict()   # a completion document is written as before
    assert json.loads(doc.to_json()) == json.loads(text)


def test_a_malformed_classification_section_is_refused() -> None:
    from tests.report_fixtures_cls import classification_results

    data = classification_results("v1", "v2", hits=[1, 0, 1, 1], base_hits=[0, 0, 1, 1]).to_dict()
    assert EvalResults.from_dict(json.loads(json.dumps(data))).classification is not None  # round trip
    data["classification"]["candidate"]["confusion"] = [[1, 2]]
    with pytest.raises(ResultsError, match=r"classification.candidate.confusion must be 3 x 3"):
        EvalResults.from_dict(data)
    data["classification"]["candidate"]["confusion"] = [[0] * 3] * 3
    data["classification"]["baseline"] = None
    with pytest.raises(ResultsError, match=r"classification.baseline must be present exactly when"):
        EvalResults.from_dict(data)


# --- the report --------------------------------------------------------------------------------

def _table_rows(markdown: str) -> list[str]:
    """The data rows of the variants tables (the header names 'vs baseline')."""
    rows, inside = [], False
    for line in markdown.split("\n"):
        if line.startswith("| variant | kind | accuracy | vs baseline |"):
            inside = True
        elif inside and line.startswith("| sentiment@"):
            rows.append(line)
        elif inside and not line.startswith("|"):
            inside = False
    return rows


def test_report_of_one_classification_result() -> None:
    from gitops.report.render import render_report
    from tests.report_fixtures import check_markdown
    from tests.report_fixtures_cls import classification_results

    r = classification_results("v2", "v1", hits=[1, 1, 1, 0, 1, 1, 0, 1, 1], base_hits=[1, 0, 0, 0, 1, 0, 0, 1, 0])
    md = render_report([r]).markdown
    check_markdown(md)
    rows = _table_rows(md)
    assert [row.split(" | ")[0] for row in rows] == ["| sentiment@v1 (baseline)", "| sentiment@v2"]
    delta = r.comparison("baseline").deltas["accuracy"]
    assert delta.delta == pytest.approx(7 / 9 - 3 / 9) and 0 < delta.low <= delta.delta <= delta.high  # paired
    assert r.comparison("baseline").deltas["macro_accuracy"].low is None   # a mean of recalls: no interval
    assert f"{7 / 9:.1%}" in rows[1] and f"{delta.delta:+.1%} [{delta.low:+.1%}, {delta.high:+.1%}]" in rows[1]
    assert "| zero-shot |" in rows[1] and "| few-shot bm25 k=3 |" in rows[0]
    assert "Perplexity" not in md and "# Metrics" not in md
    details = md[md.index("<summary>Per-class scores and confusion matrix</summary>"):]
    assert "| true / predicted | neg | neu | pos |" in details and details.index("</details>") > 0
    confusion = r.classification.candidate.confusion
    assert "| neg | " + " | ".join(str(n) for n in confusion[0]) + " |" in details


def test_report_of_several_results_makes_one_table() -> None:
    from gitops.report.render import render_report
    from tests.report_fixtures import check_markdown
    from tests.report_fixtures_cls import classification_results

    base = [1, 0, 0, 0, 1, 0, 0, 1, 0]
    docs = [classification_results("v2", "v1", [1, 1, 1, 0, 1, 1, 0, 1, 1], base),
            classification_results("v3", "v1", [0, 1, 0, 0, 1, 0, 0, 1, 0], base, kind="hf"),
            classification_results("v4", "v1", [1, 1, 1, 1, 1, 1, 1, 1, 1], base, kind="peft-lora")]
    md = render_report(docs).markdown
    check_markdown(md)
    assert md.count("## Classification variants") == 1
    rows = _table_rows(md)
    assert [row.split(" | ")[0] for row in rows] == ["| sentiment@v1 (baseline)", "| sentiment@v2",
                                                     "| sentiment@v3", "| sentiment@v4"]
    for doc, row in zip(docs, rows[1:], strict=True):
        d = doc.comparison("baseline").deltas["accuracy"]
        assert f"| {d.delta:+.1%} [{d.low:+.1%}, {d.high:+.1%}] |" in row
    assert md.count("Accuracy: in the table of classification variants above.") == 3
    converted = classification_results("v6", "v1", [1, 1, 1, 1, 1, 1, 1, 1, 0], base, kind="ct2",
                                       parent=("v4", [1] * 9))             # joined; its parent cost stays
    md = render_report([docs[0], converted]).markdown
    cost = converted.comparison("parent").deltas["accuracy"]
    assert len(_table_rows(md)) == 3 and cost.delta == pytest.approx(-1 / 9)
    assert f"Against its parent v4: accuracy {cost.delta:+.1%} [{cost.low:+.1%}, {cost.high:+.1%}]." in md

    other = classification_results("v5", "v2", [1] * 9, [1] * 9)          # another baseline: apart
    md = render_report([docs[0], other]).markdown
    check_markdown(md)
    assert "## Classification variants" not in md
    assert "The 2 results of sentiment are shown separately: their baselines differ (v1, v2)." in md
    assert len(_table_rows(md)) == 4                                       # two tables of two rows
    fewer = classification_results("v5", "v1", [1] * 6, base[:6])         # other rows: apart
    md = render_report([docs[0], fewer]).markdown
    assert "shown separately: they were scored on different rows" in md


def test_a_classification_report_keeps_data_inert_and_fits_the_limit() -> None:
    from gitops.eval.results import Sample
    from gitops.report.render import render_report
    from tests.report_fixtures import check_markdown
    from tests.report_fixtures_cls import classification_results

    r = classification_results("v2", "v1", [1, 0, 1] * 30, [0, 0, 1] * 30, kind="<b>x</b> | y")
    assert "Per-class scores and confusion matrix" in render_report([r]).markdown
    r.samples = [Sample(prompt="review text " * 100, candidate="4 " * 100, reference="pos", baseline="3 " * 100)] * 20
    rendered = render_report([r], max_chars=2500)
    md = rendered.markdown
    check_markdown(md)
    assert rendered.truncated and len(md) <= 2500 and "<b>" not in md
    assert len(_table_rows(md)) == 2                          # the variants table stays
    assert "per-class scores left out" in md and "Per-class scores and confusion matrix" not in md


def test_a_converted_candidate_is_compared_with_its_parent(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """ratings@v4 = ct2 conversion of the hf v3: eval predicts with both (v3 once, as baseline and
    parent) and the report shows the parent row and what the conversion cost in accuracy."""
    repo, out = toy_ratings_repo, tmp_path / "results.json"
    assert run_gitops("convert", f"{MODEL}@v3", "--to", "ct2", "--quantization", "float32", cwd=repo).exit_code == 0
    res = run_gitops("eval", f"{MODEL}@v4", "--baseline", f"{MODEL}@v3", "--dataset", f"{DATA}@v1",
                     "--max-rows", "4", "--out", str(out), cwd=repo)
    assert res.exit_code == 0, res.stderr
    doc = EvalResults.load(out)
    assert doc.parent is not None and (doc.candidate.format, doc.parent.version) == ("ct2", "v3")
    assert doc.parent.metrics == doc.baseline.metrics                    # v3 measured once, serving as both
    info = doc.classification
    assert (info.candidate.kind, info.parent.kind, info.baseline.kind) == ("ct2", "hf", "hf")
    cost = doc.comparison("parent").deltas["accuracy"]
    assert cost.delta == pytest.approx(doc.candidate.metrics["accuracy"] - doc.parent.metrics["accuracy"])
    md = run_gitops("report", str(out), cwd=repo).stdout
    assert f"| {MODEL}@v3 (baseline, parent) | hf |" in md and f"| {MODEL}@v3 (parent)" not in md
    assert f"Against its parent v3: accuracy {cost.delta:+.1%}" in md


def test_many_labels_leave_the_detail_tables_in_the_document() -> None:
    import dataclasses

    from gitops.eval.results import ClassificationInfo
    from gitops.predict import evaluation, scoring
    from gitops.report.classview import MAX_DETAIL_LABELS
    from gitops.report.render import render_report
    from tests.report_fixtures_cls import classification_results

    labels = [f"l{i}" for i in range(MAX_DETAIL_LABELS + 1)]
    rows = [{"key": f"r{i}", "label": label, "prediction": label, "matched": True, "latency_ms": 1.0,
             "prompt_tokens": 5, "completion_tokens": 1} for i, label in enumerate(labels)]
    side = evaluation.side_detail("zero-shot", scoring.score(rows, labels))
    r = classification_results("v2", None, [1], None)
    r = dataclasses.replace(r, classification=ClassificationInfo(labels=labels, rows_md5="x", candidate=side))
    md = render_report([r]).markdown
    assert f"{len(labels)} labels: the per-class scores and the confusion matrix are in the results document." in md
    assert "| true / predicted |" not in md
