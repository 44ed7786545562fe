"""Batch prediction and classification scores (issue 12, items 4 and 5) on the real toy model:
zero-shot, few-shot and weight variants over exactly the same rows, written to Parquet/CSV/JSONL,
resumable after an interruption, bad input refused before the model loads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.predict import batch
from gitops.predict.scoring import score
from tests.conftest import git_state, run_gitops
from tests.prompt_fixtures import DATA, MODEL, write_prompt

TASK_LABELS = ["1", "2", "3", "4", "5"]


def test_scores_count_what_they_say() -> None:
    rows = [{"label": "1", "prediction": "1", "matched": True, "latency_ms": 2.0, "prompt_tokens": 10,
             "completion_tokens": 2},
            {"label": "1", "prediction": "3", "matched": False, "latency_ms": 4.0, "prompt_tokens": 10,
             "completion_tokens": 2},
            {"label": "2", "prediction": "2", "matched": True, "latency_ms": 6.0, "prompt_tokens": 20,
             "completion_tokens": 4},
            {"label": "5", "prediction": "2", "matched": True, "latency_ms": 8.0, "prompt_tokens": 20,
             "completion_tokens": 4}]
    s = score(rows, TASK_LABELS)
    assert s.accuracy == 0.5 and s.invalid_rate == 0.25 and s.latency_p50_ms == 5.0
    assert s.macro_accuracy == pytest.approx((0.5 + 1.0 + 0.0) / 3)       # classes present: 1, 2, 5
    assert s.tokens_per_prediction == 18.0
    assert s.confusion[0] == [1, 0, 1, 0, 0] and s.confusion[4] == [0, 1, 0, 0, 0]
    two = s.per_class[1]
    assert (two.precision, two.recall, two.support) == (0.5, 1.0, 1) and two.f1 == pytest.approx(2 / 3)
    low, high = s.accuracy_ci
    assert 0.0 <= low < 0.5 < high <= 1.0


def read_out(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        return list(csv.DictReader(path.open()))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_predict_writes_every_test_row_in_each_format(toy_ratings_repo: Path, tmp_path: Path) -> None:
    repo = toy_ratings_repo
    test_keys = [r["id"] for r in batches.read_rows(Workspace.open(repo), f"{DATA}@v1", "test")]
    outs = {}
    for ext in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"preds.{ext}"
        res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--out", str(out), "--batch-size", "4",
                         cwd=repo)
        assert res.exit_code == 0, res.stderr
        assert f"{len(test_keys)} predictions written to {out}" in res.stdout and "rows/s" in res.stdout
        outs[ext] = read_out(out)
        assert not (tmp_path / f"preds.{ext}.partial.jsonl").exists()
    rows = outs["jsonl"]
    assert [r["key"] for r in rows] == test_keys
    assert [r["prediction"] for r in outs["parquet"]] == [r["prediction"] for r in rows]
    assert [r["raw_output"] for r in outs["csv"]] == [r["raw_output"] for r in rows]
    from gitops.core.task import ClassificationTask

    task = Workspace.open(repo).registry().model(MODEL).classification
    assert isinstance(task, ClassificationTask)
    for r in rows:   # the stored prediction is the task's extraction of the stored raw output
        assert (r["prediction"], r["matched"]) == task.predict(r["raw_output"])
        assert r["prompt_tokens"] > 0 and r["latency_ms"] > 0


def test_variants_see_the_same_rows_and_prompts_differ_only_by_what_they_add(toy_ratings_repo: Path,
                                                                           tmp_path: Path) -> None:
    ws = Workspace.open(toy_ratings_repo)
    plans = [batch.plan_predict(ws, f"{MODEL}@{v}", f"{DATA}@v1", "test") for v in ("v1", "v2", "v3")]
    assert plans[0].keys == plans[1].keys == plans[2].keys
    runs = {v: batch.predict(ws, f"{MODEL}@{v}", f"{DATA}@v1", batch_size=8) for v in ("v1", "v2", "v3")}
    tokens = {v: sum(p["prompt_tokens"] for p in r.predictions) for v, r in runs.items()}
    assert tokens["v3"] < tokens["v1"] < tokens["v2"]     # bare input < + instruction < + 2 examples each


def test_compare_table_markdown_and_json(toy_ratings_repo: Path) -> None:
    repo = toy_ratings_repo
    res = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v2", f"{MODEL}@v3", "--json", cwd=repo)
    assert res.exit_code == 0, res.stderr
    table = json.loads(res.stdout)
    assert table["dataset"] == f"{DATA}@v1" and table["split"] == "test"
    assert [v["kind"] for v in table["variants"]] == ["zero-shot", "few-shot bm25 k=2", "hf"]
    assert all(v["rows"] == table["rows"] for v in table["variants"])
    assert table["variants"][0]["delta_vs_first_ci"] is None
    md = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", cwd=repo)
    assert md.exit_code == 0, md.stderr
    lines = md.stdout.splitlines()
    assert lines[2].startswith("| variant | kind | accuracy | vs first |")
    acc = table["variants"][1]["accuracy"]
    assert f"| {MODEL}@v2 | few-shot bm25 k=2 | {acc:.1%}" in md.stdout


def test_an_interrupted_prediction_resumes_where_it_stopped(toy_ratings_repo: Path, tmp_path: Path) -> None:
    ws = Workspace.open(toy_ratings_repo)
    whole = batch.predict(ws, f"{MODEL}@v2", f"{DATA}@v1", split="all", out=tmp_path / "whole.jsonl",
                             batch_size=8)
    out = tmp_path / "preds.jsonl"

    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.predict(ws, f"{MODEL}@v2", f"{DATA}@v1", split="all", out=out, batch_size=8,
                         progress=stop_after_two_batches)
    partial = tmp_path / "preds.jsonl.partial.jsonl"
    assert not out.exists() and len(partial.read_text().splitlines()) == 1 + 16
    with partial.open("a") as fh:
        fh.write('{"key": "r0')            # a kill in the middle of a write leaves a torn line
    again = batch.predict(ws, f"{MODEL}@v2", f"{DATA}@v1", split="all", out=out, batch_size=8)
    assert again.resumed == 16 and again.rows == whole.rows == 60
    def timeless(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]

    assert timeless(read_out(out)) == timeless(read_out(tmp_path / "whole.jsonl"))  # greedy: as if never stopped
    assert not partial.exists()


def test_a_partial_file_of_another_run_is_refused(toy_ratings_repo: Path, tmp_path: Path) -> None:
    ws = Workspace.open(toy_ratings_repo)
    out = tmp_path / "preds.jsonl"
    (tmp_path / "preds.jsonl.partial.jsonl").write_text(json.dumps({"gitops_predict": 1, "ref": "x@v1"}) + "\n")
    res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=toy_ratings_repo)
    assert res.exit_code == 1 and "left from a prediction of another variant" in res.stderr
    assert not out.exists() and ws


@pytest.mark.parametrize("extra, needle", [
    (("--out", "p.xlsx"), "write .parquet, .csv or .jsonl"),
    (("--out", "p.jsonl", "--batch-size", "0"), "--batch-size must be from 1 to 256"),
])
def test_bad_options_are_refused(ratings_repo: Path, extra, needle) -> None:
    res = run_gitops("predict", f"{MODEL}@latest", "--dataset", f"{DATA}@v1", *extra, cwd=ratings_repo)
    assert res.exit_code == 1 and needle in res.stderr and "Traceback" not in res.stderr


def test_labels_outside_the_vocabulary_are_refused_before_loading(ratings_repo: Path, tmp_path: Path) -> None:
    """The data holds ratings 1-5; a model whose vocabulary lacks 5 cannot score it."""
    block = tmp_path / "task4.yaml"
    block.write_text('input: "{text}"\nlabel: rating\nlabels: ["1", "2", "3", "4"]\nfallback: "3"\n')
    for args in (("model", "create", "four", "--task", "classification", "--classification", str(block)),
                 ("prompt", "add", "four", "--config", str(write_prompt(tmp_path / "p.yaml")))):
        assert run_gitops(*args, cwd=ratings_repo).exit_code == 0
    before = git_state(ratings_repo)
    res = run_gitops("predict", "four@v1", "--dataset", f"{DATA}@v1", "--out", str(tmp_path / "o.jsonl"),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and "the labels 1, 2, 3, 4 do not cover reviews@v1: it has '5'" in res.stderr
    assert git_state(ratings_repo) == before and not (tmp_path / "o.jsonl").exists()


def test_predict_needs_a_classification_model(ratings_repo: Path, tmp_path: Path) -> None:
    res = run_gitops("predict", "ratings-base@v1", "--dataset", f"{DATA}@v1", "--out", str(tmp_path / "o.csv"),
                     cwd=ratings_repo)
    assert res.exit_code == 1 and "gitops predict needs 'task: classification'" in res.stderr


def test_a_prompt_version_whose_base_changed_is_refused(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """The base is pinned by md5: if the registry's record of it changes, the prompt does not run on it."""
    base_file = toy_ratings_repo / "registry/ratings-base/model.yaml"
    text = base_file.read_text()
    pinned = Workspace.open(toy_ratings_repo).registry().model(MODEL).versions["v2"].base_md5
    base_file.write_text(text.replace(f"md5: {pinned}", "md5: " + "a" * 32 + ".dir", 1))
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(tmp_path / "o.jsonl"),
                     cwd=toy_ratings_repo)
    assert res.exit_code == 1, res.stdout
    assert f"{MODEL}@v1 was added on ratings-base@v2 with md5 {pinned}, but the registry now records md5 " \
           f"{'a' * 32}.dir" in res.stderr, res.stderr
    assert not (tmp_path / "o.jsonl").exists()
    # the prompt version's own pin edited in model.yaml: its record no longer matches its reviewed file
    base_file.write_text(text)
    path = toy_ratings_repo / f"registry/{MODEL}/model.yaml"
    path.write_text(path.read_text().replace(f"base_md5: {pinned}", "base_md5: " + "a" * 32, 1))
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(tmp_path / "o.jsonl"),
                     cwd=toy_ratings_repo)
    assert res.exit_code == 1 and f"{MODEL}@v1: its record in model.yaml (base_md5) differs from its reviewed " \
        "prompt config" in res.stderr, res.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_a_lora_variant_learns_the_task_as_it_is_scored(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """gitops train on a classification model formats rows as the task's input + ' ' + label, learned
    alone (the loss on the label and end token), whatever the config's prompt section says; the
    adapter is then one more variant in the same table."""
    cfg = {"base_model": "ratings-base@v2", "dataset": f"{DATA}@v1", "output": {"model": MODEL},
           "prompt": {"template": "{text}"},
           "adapter": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
           "trainer": {"batch_size": 8, "max_length": 32, "eval_steps": 2, "learning_rate": 3e-3, "seed": 7,
                       "max_steps": 4, "epochs": 1}}
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))
    res = run_gitops("train", str(path), cwd=toy_ratings_repo)
    assert res.exit_code == 0, res.stderr
    v4 = Workspace.open(toy_ratings_repo).registry().model(MODEL).versions["v4"]
    assert v4.format == "peft-lora" and v4.config["prompt"] == {"template": "Review: {text}", "response": " {rating}",
                                                                 "chat": False, "loss": "response"}
    table = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v4", "--dataset", f"{DATA}@v1", "--json",
                       cwd=toy_ratings_repo)
    assert table.exit_code == 0, table.stderr
    kinds = [(v["kind"], v["rows"]) for v in json.loads(table.stdout)["variants"]]
    assert kinds[1][0] == "peft-lora" and kinds[0][1] == kinds[1][1] > 0


def test_a_sigkilled_prediction_resumes_after_its_last_written_batch(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """A real SIGKILL, right after the first batch reached the disk (after its fsync)."""
    from tests.crash_fixtures import run_cli, run_killed_at

    out = tmp_path / "preds.csv"
    args = ("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--split", "all", "--out", str(out),
            "--batch-size", "8")
    killed = run_killed_at(toy_ratings_repo, "os:fsync", "after", *args)
    assert killed.returncode == -9, killed.stderr
    partial = tmp_path / "preds.csv.partial.jsonl"
    assert not out.exists() and len(partial.read_text().splitlines()) == 1 + 8
    done = run_cli(toy_ratings_repo, *args)
    assert done.returncode == 0, done.stderr
    assert "60 predictions (8 resumed from a killed run)" in done.stdout
    assert [r["key"] for r in read_out(out)] == [r["id"] for r in batches.read_rows(Workspace.open(toy_ratings_repo),
                                                                                     f"{DATA}@v1")]
    assert not partial.exists()


def test_rows_run_shortest_first_and_a_resume_keeps_that_order(ratings_repo: Path, tmp_path: Path) -> None:
    """Batches of similar length pad little; the output order is the data set's (checked above)."""
    assert run_gitops("prompt", "add", MODEL, "--config", str(write_prompt(tmp_path / "p.yaml")),
                      cwd=ratings_repo).exit_code == 0
    plan = batch.plan_predict(Workspace.open(ratings_repo), f"{MODEL}@v1", f"{DATA}@v1", "all")
    order = batch.length_order(plan, set())
    lengths = [len(plan.task.render(plan.rows[i])) for i in order]
    assert sorted(order) == list(range(60)) and lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert order[:3] != [0, 1, 2]                      # not the data set's order: the rows differ in length
    done = set(order[:16])                             # a killed run's first two batches of 8
    assert batch.length_order(plan, done) == order[16:]
