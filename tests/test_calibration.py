"""Calibrated prompt versions (issue 20 item 4): ``calibrate: content-free`` divides each row's label
probabilities by those the same prompt (same instruction, same examples) gives content-free inputs,
on the real toy model; predict and serve answer a row alike; bad configs are refused."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from gitops.core.task import ClassificationTask
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.ml import choices
from gitops.predict.calibration import CONTENT_FREE, Calibrator, label_answers
from gitops.predict.renderer import PromptRenderer
from tests.conftest import git_state, run_gitops
from tests.ml_fixtures import base_model_dir, ml_cache_dir  # noqa: F401
from tests.prompt_fixtures import (  # noqa: F401
    BASE,
    DATA,
    MODEL,
    ratings_repo,
    review_rows,
    toy_ratings_repo,
    write_prompt,
)
from tests.test_serve_cli import Server, free_port
from tests.test_serve_prompt import openai_client

TASK = ClassificationTask("Review: {text}", "rating", ["1", "2", "3", "4", "5"], "3")
CONFIG = {"template": "{task}\n{context}{sample}\nRating:", "task": "Rate it.",
          "example": "Review: {text}\nRating: {rating}\n"}   # short: one example fits the toy's 128-token window


@pytest.fixture(scope="module")
def toy(base_model_dir: Path):  # noqa: F811
    from gitops.ml.backends import open_backend

    backend = open_backend(base_model_dir, "hf")
    yield backend
    backend.close()


def _calibrator() -> Calibrator:
    return Calibrator(TASK, PromptRenderer(TASK, CONFIG).render, lambda prompts, tokenizer: prompts,
                      lambda row: row["id"])


def test_calibration_flattens_the_toys_bias_and_divides_by_the_content_free_prior(toy) -> None:
    """The toy answers "2" for every one of these rows (its own bias under this prompt, whatever the
    row says); calibrated, "2" loses its hold, the labels' mean probabilities are near uniform, each
    row's probabilities are its raw ones divided by the content-free ones of ITS examples (computed
    here independently), and they still sum to 1."""
    rows = review_rows(60)
    queries = rows[:30]
    examples = [[rows[(i * 7 + 31) % 60]] for i in range(30)]
    render = PromptRenderer(TASK, CONFIG).render
    prompts = [render(r, ex) for r, ex in zip(queries, examples, strict=True)]
    calibrator = _calibrator()
    raw = label_answers(toy, TASK, prompts, examples)
    cal = label_answers(toy, TASK, prompts, examples, calibrator=calibrator)
    raw_top, raw_n = collections.Counter(j for j, _, _ in raw).most_common(1)[0]
    assert raw_n >= 27, "the constructed case needs a prompt that biases the toy towards one label"
    assert sum(j == raw_top for j, _, _ in cal) <= 15                     # the biased label's share drops
    raw_mean = [sum(p[k] for _, p, _ in raw) / 30 for k in range(5)]
    cal_mean = [sum(p[k] for _, p, _ in cal) / 30 for k in range(5)]
    assert cal_mean[raw_top] < raw_mean[raw_top] - 0.05
    assert max(cal_mean) - min(cal_mean) < (max(raw_mean) - min(raw_mean)) / 2   # flatter
    for n in (0, 7, 29):  # p_cal ∝ p_raw / p_cf, p_cf from the content-free rows with the row's own example
        free = [render({"text": t}, examples[n]) for t in CONTENT_FREE]
        assert len(set(free)) == 3 and all("Rating: " + examples[n][0]["rating"] in f for f in free)
        p_cf = [sum(col) / 3 for col in zip(*(choices.probabilities(s)
                                               for s in choices.score_labels(toy, free, TASK.labels)))]
        weights = [p / q for p, q in zip(raw[n][1], p_cf, strict=True)]
        assert cal[n][1] == pytest.approx([w / sum(weights) for w in weights], abs=1e-6)
        assert cal[n][0] == max(range(5), key=lambda k: cal[n][1][k])
    assert all(sum(p) == pytest.approx(1.0, abs=1e-9) for _, p, _ in cal)


def test_the_content_free_cache_is_keyed_by_the_examples(toy) -> None:
    """One content-free scoring per distinct example set (ids in prompt order), reused after; another
    set (or the same examples in another order) gets its own, different prior."""
    rows = review_rows(12)
    calibrator = _calibrator()
    sets = [[rows[0], rows[1]], [rows[2], rows[3]], [rows[0], rows[1]], [rows[1], rows[0]], []]
    priors = calibrator.priors(toy, sets)
    assert calibrator.computed == 4 and len(calibrator.cache) == 4
    assert priors[0] == priors[2]
    for a, b in ((0, 1), (0, 3), (0, 4)):
        assert priors[a] != pytest.approx(priors[b], abs=1e-6)
    again = calibrator.priors(toy, [[rows[2], rows[3]], []])
    assert calibrator.computed == 4 and again == [priors[1], priors[4]]


@pytest.mark.parametrize(("text", "needle"), [
    ("calibrate: yes\n", "calibrate must be 'content-free'"),
    ("calibrate: [content-free]\n", "calibrate must be 'content-free'"),
])
def test_a_bad_calibrate_value_is_one_sentence_naming_key_and_line(ratings_repo: Path, tmp_path: Path,  # noqa: F811
                                                                   text: str, needle: str) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"base: {BASE}@v1\ntemplate: '{{sample}}'\n{text}")
    before = git_state(ratings_repo)
    res = run_gitops("prompt", "add", MODEL, "--config", str(cfg), cwd=ratings_repo)
    assert res.exit_code == 1 and f"{cfg}:3" in res.stderr and needle in res.stderr, res.stderr
    assert res.stderr.startswith("Error: ") and "Traceback" not in res.stderr
    assert git_state(ratings_repo) == before


def test_calibrating_a_completion_model_is_refused(ratings_repo: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"base: {BASE}@v1\ntemplate: '{{sample}}'\ncalibrate: content-free\n")
    before = git_state(ratings_repo)
    res = run_gitops("prompt", "add", BASE, "--config", str(cfg), cwd=ratings_repo)
    assert res.exit_code == 1 and "calibrate: content-free needs a model with task: classification" in res.stderr
    assert git_state(ratings_repo) == before


def test_a_calibrated_version_predicts_and_serves_alike(toy_ratings_repo: Path, tmp_path: Path) -> None:  # noqa: F811
    """ratings@v4: few-shot bm25 k=1, calibrated. predict writes calibrated probabilities (summing to
    1, the prediction their argmax, unlike v5, the same prompt uncalibrated); compare names it;
    --constrain none is refused; the server answers each test row as predict did."""
    repo = toy_ratings_repo
    few = {"base": f"{BASE}@v2", "template": CONFIG["template"], "task": CONFIG["task"],
           "example": CONFIG["example"], "retrieval": {"type": "bm25", "k": 1}}
    for args in (("prompt", "add", MODEL, "--config", str(write_prompt(tmp_path / "c.yaml", **few,
                                                                        calibrate="content-free"))),
                 ("prompt", "add", MODEL, "--config", str(write_prompt(
                     tmp_path / "r.yaml", **few, generation={"max_new_tokens": 3, "constrain": "labels"}))),
                 ("alias", "set", MODEL, "production", "v4")):
        assert run_gitops(*args, cwd=repo).exit_code == 0, args
    out = {}
    for v in ("v4", "v5"):
        res = run_gitops("predict", f"{MODEL}@{v}", "--dataset", f"{DATA}@v1", "--split", "test", "--out",
                         str(tmp_path / f"{v}.jsonl"), cwd=repo)
        assert res.exit_code == 0, res.stderr
        out[v] = [json.loads(line) for line in (tmp_path / f"{v}.jsonl").read_text().splitlines()]
    cal, raw = out["v4"], out["v5"]
    assert len(cal) >= 6
    for r in cal:
        probs = r["probabilities"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9) and r["matched"]
        assert r["prediction"] == r["raw_output"] == max(probs, key=probs.get)
    assert [r["probabilities"] for r in cal] != pytest.approx([r["probabilities"] for r in raw], abs=1e-3)
    res = run_gitops("predict", f"{MODEL}@v4", "--dataset", f"{DATA}@v1", "--constrain", "none", "--out",
                     str(tmp_path / "none.jsonl"), cwd=repo)
    assert res.exit_code == 1 and "is calibrated" in res.stderr and "Traceback" not in res.stderr
    res = run_gitops("compare", f"{MODEL}@v5", f"{MODEL}@v4", "--dataset", f"{DATA}@v1", "--json", cwd=repo)
    assert res.exit_code == 0, res.stderr
    rows = {v["ref"]: v for v in json.loads(res.stdout)["variants"]}
    assert rows[f"{MODEL}@v4"]["kind"] == "few-shot bm25 k=1, calibrated, constrained"
    assert rows[f"{MODEL}@v4"]["accuracy"] == pytest.approx(sum(r["prediction"] == r["label"] for r in cal) / len(cal))
    texts = {r["id"]: r["text"] for r in batches.read_rows(Workspace.open(repo), f"{DATA}@v1")}
    server = Server(repo, free_port(), secret=None, ref=f"{MODEL}@production")
    try:
        server.wait_ready(f"{MODEL}@v4")
        client = openai_client(server.url)
        picked = cal[:4]
        resp = client.completions.create(model=MODEL, prompt=[texts[r["key"]] for r in picked], temperature=0)
        for r, choice in zip(picked, resp.choices, strict=True):
            assert choice.text == r["raw_output"] == r["prediction"]
            assert choice.classification["probabilities"] == pytest.approx(r["probabilities"], abs=1e-6)
    finally:
        server.stop()
        assert "Traceback" not in server.logs()
