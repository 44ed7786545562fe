"""The measuring core, without a repository: prompts, percentiles, and loss checked against an
independent computation with transformers' own loss."""

from __future__ import annotations

import math

import pytest

from gitops.errors import EvalError
from gitops.eval import harness
from gitops.eval.harness import MeasureConfig, Prompt

TEXTS = ["I love this blender. Five stars from me, it is great.",
         "Worst toaster I have ever owned. The handle is flimsy and the lid feels cheap.",
         "This desk lamp is okay for the price and the light is soft.",
         "Too short."]


def test_prompts_are_the_first_words_and_the_rest_is_the_reference():
    prompts = harness.make_prompts(TEXTS, words=6)
    assert prompts[0] == Prompt("I love this blender. Five stars", " from me, it is great.")
    assert all(p.text + p.reference == t for p, t in zip(prompts, TEXTS))
    assert len(prompts) == 3  # "Too short." has nothing left to complete
    assert harness.make_prompts(["one two three"], words=3) == []


def test_percentile_interpolates_like_numpy():
    values = [10.0, 1.0, 4.0, 2.0, 3.0]
    assert harness.percentile(values, 50) == 3.0
    assert harness.percentile(values, 95) == pytest.approx(8.8)  # numpy.percentile: 8.8
    assert harness.percentile([7.0], 95) == 7.0
    with pytest.raises(EvalError):
        harness.percentile([], 50)


def test_loss_metrics_mean_over_tokens_and_overflow():
    assert harness.loss_metrics(6.0, 3) == {"loss": 2.0, "perplexity": math.exp(2.0)}
    assert harness.loss_metrics(1e6, 1) == {"loss": 1e6, "perplexity": None}
    with pytest.raises(EvalError):
        harness.loss_metrics(0.0, 0)


def test_measure_matches_transformers_loss_and_records_samples(base_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gitops.ml.backends import open_backend

    texts = TEXTS[:3]
    prompts = harness.make_prompts(texts)
    calls: list[tuple[str, int, int]] = []
    with open_backend(base_model_dir, "hf", threads=1) as backend:
        got = harness.measure(backend, texts, prompts, MeasureConfig(max_new_tokens=4, batch_size=2, samples=2),
                              weights_dir=base_model_dir, progress=lambda *a: calls.append(a))
    # independent: transformers' mean loss per text times its scored tokens, summed
    tok = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir).eval()
    nll = n = 0
    for text in texts:
        ids = tok(text + tok.eos_token, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            loss = model(input_ids=ids, labels=ids).loss.item()
        nll += loss * (ids.shape[1] - 1)
        n += ids.shape[1] - 1
    assert got.tokens == n and got.rows == 3
    assert got.metrics["loss"] == pytest.approx(nll / n, rel=1e-4)
    assert got.metrics["size_bytes"] == harness.dir_size(base_model_dir) > 0
    assert got.metrics["latency_p95_ms"] >= got.metrics["latency_p50_ms"] > 0
    assert got.metrics["tokens_per_s"] > 0
    assert len(got.completions) == 2 and all(c.strip() for c in got.completions)
    assert {stage for stage, _, _ in calls} == {"loss", "latency", "throughput"}
    assert calls[-1] == ("throughput", 3, 3)


def test_measure_refuses_empty_inputs(base_model_dir):
    from gitops.ml.backends import open_backend

    with open_backend(base_model_dir, "hf", threads=1) as backend:
        with pytest.raises(EvalError, match="split is empty"):
            harness.measure(backend, [], [], MeasureConfig())
        with pytest.raises(EvalError, match="long enough"):
            harness.measure(backend, ["short"], [], MeasureConfig())


def test_training_curve_is_read_when_present_and_ignored_when_broken(tmp_path):
    from gitops.eval.evaluate import read_curve

    (tmp_path / "loss_curve.json").write_text(
        '[{"step": 1, "train_loss": 2.5, "eval_loss": null}, {"step": 2, "train_loss": 2.0, "eval_loss": 2.2}]')
    curve = read_curve(tmp_path)
    assert [(p.step, p.train_loss, p.eval_loss) for p in curve] == [(1, 2.5, None), (2, 2.0, 2.2)]
    (tmp_path / "loss_curve.json").write_text("{not json")
    assert read_curve(tmp_path) == []
    assert read_curve(tmp_path / "missing") == []


@pytest.mark.parametrize("cpus,threads", [(1, 1), (2, 1), (3, 1), (6, 3), (8, 4), (64, 4)])
def test_default_threads_is_half_the_usable_cpus_at_most_four(monkeypatch, cpus, threads):
    import os

    from gitops.eval import evaluate

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)), raising=False)
    assert evaluate.default_threads() == threads
