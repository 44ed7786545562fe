"""Decoding constrained to the label vocabulary (issue 12, item 4) on the real toy model: every label
scored as the prompt's continuation, the likeliest predicted; checked against transformers forward
passes computed here independently, per label, one sequence at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.core.workspace import Workspace
from gitops.ml import choices
from gitops.predict import batch
from gitops.predict.renderer import PromptRenderer
from tests.conftest import git_state, run_gitops
from tests.prompt_fixtures import BASE, DATA, MODEL, write_prompt

PROMPTS = ["Rate the review from 1 to 5.\nReview: excellent superb love item number 3\nRating:",
           "Review: awful broken refund\nRating:", "Review: ok\nRating:"]


@pytest.fixture(scope="module")
def toy_model(base_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(base_model_dir).eval(), AutoTokenizer.from_pretrained(base_model_dir)


def independent(toy_model, prompt: str, label: str) -> float:
    """log P(" label" | prompt): the text tokenized whole, one unpadded forward, the tokens after the
    prompt's summed."""
    import torch

    model, tok = toy_model
    full = tok(prompt + " " + label)["input_ids"]
    n = len(tok(prompt)["input_ids"])
    assert full[:n] == tok(prompt)["input_ids"]           # the toy's tokenizer keeps the prompt's tokens
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), -1)
    return float(sum(logp[t - 1, full[t]] for t in range(n, len(full))))


@pytest.mark.parametrize("labels", [["1", "2", "3", "4", "5"],        # " 5" is two toy tokens: the sequence path
                                    ["one", "bad", "the", "broken"],  # one token each: the next-token path
                                    ["one", "two words", "5"]])       # mixed lengths in one batch
@pytest.mark.parametrize("fmt", ["hf", "ct2"])
def test_label_scores_equal_independent_forward_passes(toy_model, base_model_dir: Path, tmp_path_factory,
                                                       fmt: str, labels: list[str]) -> None:
    from gitops.ml.backends import open_backend

    path = base_model_dir
    if fmt == "ct2":
        from gitops.convert.ct2 import convert_to_ct2

        path = convert_to_ct2(base_model_dir, tmp_path_factory.mktemp("ct2") / "m", "float32")
    with open_backend(path, fmt, threads=1) as backend:
        got = choices.score_labels(backend, PROMPTS, labels)
    for prompt, row in zip(PROMPTS, got, strict=True):
        want = [independent(toy_model, prompt, label) for label in labels]
        assert [s for s, _ in row] == pytest.approx(want, abs=2e-3)
        counts = [len(choices.choices(toy_model[1], [prompt], [label], None)[0][0].scored) for label in labels]
        assert [n for _, n in row] == counts


@pytest.mark.parametrize("fmt", ["hf", "ct2"])
def test_a_label_merging_with_the_prompts_end_is_scored_as_the_joint_text(toy_model, base_model_dir: Path,
                                                                          tmp_path_factory, fmt: str) -> None:
    """A prompt ending in a space: "one" is written "Ġone" with that space, "5" is "Ġ" + "5" (toy
    tokenizer), so the labels' contexts differ and every (prompt, label) sequence is scored whole."""
    from gitops.ml.backends import open_backend

    model, tok = toy_model
    prompt = "Review: ok\nRating: "
    rows = choices.choices(tok, [prompt], ["one", "5"], None)[0]
    assert rows[0].context != rows[1].context          # the path this test is about
    path = base_model_dir
    if fmt == "ct2":
        from gitops.convert.ct2 import convert_to_ct2

        path = convert_to_ct2(base_model_dir, tmp_path_factory.mktemp("ct2") / "m", "float32")
    with open_backend(path, fmt, threads=1) as backend:
        [got] = choices.score_labels(backend, [prompt], ["one", "5"])
    import torch

    want = []
    for c in rows:                                     # unpadded, one sequence at a time
        full = c.context + c.scored
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), -1)
        want.append(float(sum(logp[t - 1, full[t]] for t in range(len(c.context), len(full)))))
    assert [s for s, _ in got] == pytest.approx(want, abs=2e-3)
    assert rows[0].context + rows[0].scored == tok(prompt + "one")["input_ids"]


def test_the_continuation_is_the_training_format() -> None:
    assert choices.continuation_text("Rating:", "5") == " 5"
    assert choices.continuation_text("Rating: ", "5") == "5"     # no second space
    assert choices.best([(-3.0, 1), (-1.0, 2), (-1.0, 1)]) == 1  # a tie goes to the first label


def test_constrained_predictions_are_labels_and_the_argmax(toy_ratings_repo: Path, toy_model, tmp_path: Path) -> None:
    repo = toy_ratings_repo
    out = tmp_path / "preds.jsonl"
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(out), "--constrain",
                     "labels", "--batch-size", "5", cwd=repo)
    assert res.exit_code == 0, res.stderr
    assert "decoding constrained to the labels" in res.stdout and "invalid outputs 0.0%" in res.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["matched"] and r["raw_output"] == r["prediction"] for r in rows)
    ws = Workspace.open(repo)
    plan = batch.plan_predict(ws, f"{MODEL}@v1", f"{DATA}@v1", "test")
    labels = plan.task.labels
    renderer = PromptRenderer(plan.task, plan.config)
    for i in range(4):                                          # the zero-shot prompt: no retrieval
        prompt = renderer.render(plan.rows[i], [])
        scores = [independent(toy_model, prompt, label) for label in labels]
        assert rows[i]["prediction"] == labels[max(range(len(labels)), key=scores.__getitem__)]
        assert rows[i]["completion_tokens"] == 2               # " " and the digit, in the toy's tokenizer
    free = batch.predict(ws, f"{MODEL}@v1", f"{DATA}@v1", batch_size=5)
    assert not free.constrained and any(r["raw_output"] != r["prediction"] for r in free.predictions)


def test_a_prompt_config_can_constrain_and_compare_says_so(toy_ratings_repo: Path, tmp_path: Path) -> None:
    repo = toy_ratings_repo
    cfg = write_prompt(tmp_path / "c.yaml", base=f"{BASE}@v2", template="{task}\n{sample}\nRating:", retrieval=None,
                       example=None, dataset=None, generation={"max_new_tokens": 3, "constrain": "labels"})
    res = run_gitops("prompt", "add", MODEL, "--config", str(cfg), cwd=repo)
    assert res.exit_code == 0 and f"{MODEL}@v4" in res.stdout, res.stderr
    ws = Workspace.open(repo)
    assert ws.registry().model(MODEL).versions["v4"].config["generation"]["constrain"] == "labels"
    # v1 is the same config without the key: its hash (and so its identity) did not change
    assert ws.registry().model(MODEL).versions["v1"].config["generation"] == {"max_new_tokens": 3, "temperature": 0.0}
    table = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v4", "--dataset", f"{DATA}@v1", "--json", cwd=repo)
    assert table.exit_code == 0, table.stderr
    variants = json.loads(table.stdout)["variants"]
    assert [v["kind"] for v in variants] == ["zero-shot", "zero-shot, constrained"]
    assert variants[1]["invalid_rate"] == 0.0
    forced = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v4", "--dataset", f"{DATA}@v1", "--json",
                        "--constrain", "none", cwd=repo)
    assert [v["kind"] for v in json.loads(forced.stdout)["variants"]] == ["zero-shot", "zero-shot"]


def test_a_constrained_partial_file_does_not_resume_a_free_run(toy_ratings_repo: Path, tmp_path: Path) -> None:
    ws = Workspace.open(toy_ratings_repo)
    out = tmp_path / "p.jsonl"

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.predict(ws, f"{MODEL}@v1", f"{DATA}@v1", out=out, batch_size=4, constrain="labels", progress=stop)
    res = run_gitops("predict", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=toy_ratings_repo)
    assert res.exit_code == 1 and "left from a prediction of another variant, data set, split or decoding" in res.stderr


def test_bad_constrain_values_are_named_with_file_and_line(ratings_repo: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"base: {BASE}@v1\ntemplate: '{{sample}}'\ngeneration:\n  max_new_tokens: 2\n  constrain: words\n")
    before = git_state(ratings_repo)
    res = run_gitops("prompt", "add", MODEL, "--config", str(cfg), cwd=ratings_repo)
    assert res.exit_code == 1 and f"{cfg}:5" in res.stderr
    assert "generation.constrain must be 'labels'" in res.stderr and "'words'" in res.stderr
    assert git_state(ratings_repo) == before
    cli = run_gitops("predict", f"{MODEL}@latest", "--dataset", f"{DATA}@v1", "--out", "o.jsonl", "--constrain",
                     "words", cwd=ratings_repo)
    assert cli.exit_code != 0 and "--constrain" in cli.stderr
    with pytest.raises(Exception, match="--constrain must be one of labels, none"):
        batch.plan_predict(Workspace.open(ratings_repo), f"{MODEL}@latest", f"{DATA}@v1", constrain="words")


def test_a_constrained_prompt_needs_a_classification_model(ratings_repo: Path, tmp_path: Path) -> None:
    assert run_gitops("model", "create", "plain", cwd=ratings_repo).exit_code == 0
    cfg = write_prompt(tmp_path / "p.yaml", retrieval=None, example=None, dataset=None,
                       template="{sample}", generation={"constrain": "labels"})
    before = git_state(ratings_repo)
    res = run_gitops("prompt", "add", "plain", "--config", str(cfg), cwd=ratings_repo)
    assert res.exit_code == 1 and "generation.constrain: labels needs a model with task: classification" in res.stderr
    assert git_state(ratings_repo) == before


def test_a_prompt_version_runs_on_a_ct2_base_batched(toy_ratings_repo: Path, base_model_dir: Path,
                                                     tmp_path: Path) -> None:
    """A prompt version may name a ct2 version as its base: CTranslate2 then generates (and scores) the
    batches; float32 ct2 agrees with the hf base on every constrained prediction."""
    from gitops.convert.ct2 import convert_to_ct2

    repo = toy_ratings_repo
    ct2 = convert_to_ct2(base_model_dir, tmp_path / "ct2", "float32")
    assert run_gitops("register", BASE, str(ct2), "--format", "ct2", cwd=repo).exit_code == 0   # ratings-base@v3
    cfg = write_prompt(tmp_path / "z.yaml", base=f"{BASE}@v3", template="{task}\n{sample}\nRating:", retrieval=None,
                       example=None, dataset=None)
    res = run_gitops("prompt", "add", MODEL, "--config", str(cfg), cwd=repo)
    assert res.exit_code == 0 and f"{MODEL}@v4 (prompt on {BASE}@v3" in res.stdout, res.stderr
    ws = Workspace.open(repo)
    on_ct2 = batch.predict(ws, f"{MODEL}@v4", f"{DATA}@v1", batch_size=8, constrain="labels")
    on_hf = batch.predict(ws, f"{MODEL}@v1", f"{DATA}@v1", batch_size=8, constrain="labels")
    assert on_ct2.rows == on_hf.rows > 0
    assert [p["prediction"] for p in on_ct2.predictions] == [p["prediction"] for p in on_hf.predictions]
    free = batch.predict(ws, f"{MODEL}@v4", f"{DATA}@v1", batch_size=8)
    assert [p["key"] for p in free.predictions] == [p["key"] for p in on_hf.predictions]
    assert all(p["completion_tokens"] <= 3 for p in free.predictions)


def test_many_labels_split_a_batch_into_bounded_engine_calls(toy_model, base_model_dir: Path,
                                                             monkeypatch) -> None:
    """Rows x labels is bounded per engine call; the scores do not depend on the split."""
    from gitops.ml.backends import open_backend

    labels = ["1", "2", "3", "4", "5"]
    with open_backend(base_model_dir, "hf", threads=1) as backend:
        whole = choices.score_labels(backend, PROMPTS, labels)
        monkeypatch.setattr(choices, "MAX_SEQUENCES", 5)       # one row per call
        split = choices.score_labels(backend, PROMPTS, labels)
    assert len(split) == len(PROMPTS)
    assert [[s for s, _ in row] for row in split] == [pytest.approx([s for s, _ in row], abs=2e-3) for row in whole]
