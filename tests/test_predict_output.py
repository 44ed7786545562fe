"""What ``gitops predict`` writes, and from what (issue 20 "also found" and item 4, issue 17 item 8):
new unlabeled rows from a plain file, the input text and per-label probabilities beside each
prediction, a partial file bound to its rows, an output path that is a directory refused first,
CSV cells neutralised against formula injection, and a resumed run's progress rate."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from gitops.core.workspace import Workspace
from gitops.predict import batch, output
from tests.conftest import git_state, run_gitops
from tests.prompt_fixtures import DATA, MODEL

LABELS = ["1", "2", "3", "4", "5"]


def test_an_unlabeled_file_is_predicted_with_its_input_and_probabilities(toy_ratings_repo: Path,
                                                                         tmp_path: Path) -> None:
    repo = toy_ratings_repo
    new = tmp_path / "new.csv"
    new.write_text("text,rating\nexcellent superb love it,\nawful broken refund,1\nokay average,\n")
    out = tmp_path / "new.jsonl"
    res = run_gitops("predict", f"{MODEL}@v2", "--input", str(new), "--out", str(out), cwd=repo)
    assert res.exit_code == 0, res.stderr
    assert "3 predictions written" in res.stdout and "(1 of 3 rows labelled)" in res.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in rows] == ["line 2", "line 3", "line 4"]
    assert [r["input"] for r in rows] == ["Review: excellent superb love it", "Review: awful broken refund",
                                          "Review: okay average"]
    assert [r["label"] for r in rows] == [None, "1", None]
    for r in rows:
        assert list(r["probabilities"]) == LABELS and math.fsum(r["probabilities"].values()) == pytest.approx(1)
        assert r["prediction"] in LABELS
    # the same rows in a data set give the same predictions: a file is only another way in
    bare = tmp_path / "bare.jsonl"       # no label column at all, and JSON Lines
    bare.write_text("".join(json.dumps({"text": r["input"][len("Review: "):]}) + "\n" for r in rows))
    again = run_gitops("predict", f"{MODEL}@v2", "--input", str(bare), "--out", str(tmp_path / "b.csv"), cwd=repo)
    assert again.exit_code == 0, again.stderr and "no row has a label: nothing to score" in again.stdout
    got = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert [g["raw_output"] for g in got] == [r["raw_output"] for r in rows]
    assert [json.loads(g["probabilities"]) for g in got] == pytest.approx([r["probabilities"] for r in rows])


def test_a_file_the_task_cannot_read_is_one_sentence(ratings_repo: Path, tmp_path: Path) -> None:
    """ratings-base@v1 holds dummy weights: these refusals come before any model loads."""
    from tests.prompt_fixtures import write_prompt

    assert run_gitops("prompt", "add", MODEL, "--config", str(write_prompt(tmp_path / "p.yaml")),
                      cwd=ratings_repo).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("body,rating\nnice,5\n")
    res = run_gitops("predict", f"{MODEL}@v1", "--input", str(bad), "--out", str(tmp_path / "o.jsonl"),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and f"{bad}:2: there is no column 'text'" in res.stderr, res.stderr
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"text": "nice", "rating": "7"}) + "\n")
    res = run_gitops("predict", f"{MODEL}@v1", "--input", str(wrong), "--out", str(tmp_path / "o.jsonl"),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and "do not cover" in res.stderr and "'7'" in res.stderr
    both = run_gitops("predict", f"{MODEL}@v1", "--input", str(wrong), "--dataset", f"{DATA}@v1", "--out",
                      str(tmp_path / "o.jsonl"), cwd=ratings_repo)
    assert both.exit_code == 1 and "one of the two" in both.stderr
    before = git_state(ratings_repo)
    (tmp_path / "outdir.jsonl").mkdir()       # a directory named like an output file
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(tmp_path / "outdir.jsonl"),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and "is a directory" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "d.jsonl.partial.jsonl").mkdir()
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(tmp_path / "d.jsonl"),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and "its partial file" in res.stderr
    assert git_state(ratings_repo) == before and not (tmp_path / "o.jsonl").exists()


def test_a_partial_file_with_foreign_lines_is_refused(toy_ratings_repo: Path, tmp_path: Path) -> None:
    ws = Workspace.open(toy_ratings_repo)
    out = tmp_path / "preds.jsonl"

    def stop(done: int, total: int) -> None:
        if done >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.predict(ws, f"{MODEL}@v2", f"{DATA}@v1", split="all", out=out, batch_size=8, progress=stop)
    partial = output.partial_path(out)
    good = partial.read_text()
    header, first, *rest = good.splitlines()
    line = json.loads(first)
    forged = {
        "a digest of another row": {**line, "digest": "0" * 16},
        "a row number past the end": {**line, "row": 60},
        "a prediction that is no label": {**line, "prediction": "=HYPERLINK(1)"},
        "the same row twice": json.loads(rest[0]) | {"row": line["row"], "digest": line["digest"]},
        "a probability out of range": {**line, "probabilities": dict.fromkeys(LABELS, 2.0)},
    }
    for what, bad in forged.items():
        partial.write_text("\n".join([header, first, json.dumps(bad), *rest[1:]]) + "\n")
        res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--split", "all", "--out", str(out),
                         "--batch-size", "8", cwd=toy_ratings_repo)
        assert res.exit_code == 1, what
        assert f"{partial}:3: " in res.stderr and "cannot be resumed" in res.stderr, (what, res.stderr)
        assert not out.exists()
    partial.write_text(good)            # the untouched file resumes
    again = batch.predict(ws, f"{MODEL}@v2", f"{DATA}@v1", split="all", out=out, batch_size=8)
    assert again.resumed == 16 and again.rows == 60 and not partial.exists()


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(tmp_path: Path) -> None:
    rows = [{"key": "=cmd|' /C calc'!A0", "input": "+SUM(1,2)", "label": "-1", "prediction": "@SUM(A1)",
             "matched": True, "raw_output": "\t=1+1", "prompt_tokens": 3, "completion_tokens": 1,
             "latency_ms": 1.5, "probabilities": {"-1": 0.25, "=x": 0.75}},
            {"key": "r2", "input": "-2.5e3", "label": "+3", "prediction": "\r=evil", "matched": False,
             "raw_output": "fine", "prompt_tokens": 3, "completion_tokens": 1, "latency_ms": 1.0,
             "probabilities": None}]
    out = tmp_path / "p.csv"
    output.write_predictions(out, rows, batch.COLUMNS)
    got = list(csv.DictReader(out.open(newline="")))
    assert got[0]["key"] == "'=cmd|' /C calc'!A0" and got[0]["input"] == "'+SUM(1,2)"
    assert got[0]["prediction"] == "'@SUM(A1)" and got[0]["raw_output"] == "'\t=1+1"
    assert got[0]["label"] == "-1" and got[1]["input"] == "-2.5e3" and got[1]["label"] == "+3"  # plain numbers
    assert got[1]["prediction"] == "'\r=evil" and got[1]["probabilities"] == ""
    assert json.loads(got[0]["probabilities"]) == {"-1": 0.25, "=x": 0.75}      # a JSON object starts with {
    for row in got:
        assert not any(v.startswith(output.FORMULA_START) and not v.lstrip("+-").replace(".", "").replace(
            "e", "").isdigit() for v in row.values())


def test_the_progress_rate_counts_only_this_runs_rows() -> None:
    """A resumed run used to show its resumed rows as done in an instant ("1100145 row/s")."""
    import time

    from gitops.cli.progress import StageBar

    with StageBar(unit="row") as bar:
        bar("predict", 50_000, 60_000)          # what predict reports first: the rows a killed run did
        start = time.perf_counter()
        time.sleep(0.05)
        bar("predict", 50_010, 60_000)
        elapsed = time.perf_counter() - start
        info = bar.bar.format_dict
        rate = (info["n"] - info["initial"]) / info["elapsed"]
        assert info["initial"] == 50_000 and rate <= 10 / elapsed * 1.5
        assert "row/s" in bar.bar.format_meter(**info) and "50,0" not in bar.bar.format_meter(**info)


def test_compare_adds_f1_log_loss_calibration_and_the_majority_class(toy_ratings_repo: Path) -> None:
    from collections import Counter

    from gitops.data import batches

    repo = toy_ratings_repo
    res = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v3", "--dataset", f"{DATA}@v1", "--json", cwd=repo)
    assert res.exit_code == 0, res.stderr
    table = json.loads(res.stdout)
    ws = Workspace.open(repo)
    train = Counter(r["rating"] for r in batches.read_rows(ws, f"{DATA}@v1", "train"))
    test = [r["rating"] for r in batches.read_rows(ws, f"{DATA}@v1", "test")]
    top = max(LABELS, key=lambda label: (train[label], -LABELS.index(label)))
    majority = table["majority_baseline"]
    assert majority["label"] == top and majority["accuracy"] == pytest.approx(test.count(top) / len(test))
    prior = (train[test[0]] + 1) / (sum(train.values()) + 5)
    assert majority["log_loss"] == pytest.approx(sum(-math.log((train[t] + 1) / (sum(train.values()) + 5))
                                                     for t in test) / len(test)) and prior > 0
    out = Path(repo).parent / "v1.jsonl"
    assert run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=repo).exit_code == 0
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    v1 = table["variants"][0]
    assert v1["log_loss"] == pytest.approx(sum(-math.log(p["probabilities"][p["label"]]) for p in preds) / len(preds))
    assert v1["macro_f1_ci"][0] <= v1["macro_f1"] <= v1["macro_f1_ci"][1] and v1["ece"] is not None
    assert table["variants"][1]["deltas_vs_first"]["log_loss"] is not None
    md = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v3", "--dataset", f"{DATA}@v1", cwd=repo).stdout
    assert "| macro-F1 | log loss | ECE |" in md and f'| always "{top}" | majority class |' in md
