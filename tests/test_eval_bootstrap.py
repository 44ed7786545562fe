"""Paired bootstrap intervals on constructed cases with known answers, and the words the report
puts on them: "better"/"worse" only when the interval excludes zero."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gitops.eval import bootstrap
from gitops.eval.compare import compare, statistics
from gitops.eval.harness import Measurement
from gitops.eval.results import Delta, ResultsError
from gitops.report.views import _change


def measured(nll: list[float], tokens: list[int], latencies: list[float], batches: list[tuple[int, float]],
             size: float = 1e6) -> Measurement:
    """A Measurement as the harness builds it, from per-unit numbers."""
    m = Measurement(row_nll=list(nll), row_tokens=list(tokens), latencies=list(latencies),
                    batch_tokens=[t for t, _ in batches], batch_seconds=[s for _, s in batches])
    loss = math.fsum(nll) / sum(tokens)
    m.metrics = {"loss": loss, "perplexity": math.exp(loss),
                 "latency_p50_ms": float(np.percentile(latencies, 50)) * 1000,
                 "latency_p95_ms": float(np.percentile(latencies, 95)) * 1000,
                 "tokens_per_s": sum(m.batch_tokens) / sum(m.batch_seconds), "size_bytes": size}
    return m


def holdout(n: int = 300, seed: int = 1) -> tuple[list[float], list[int]]:
    """Rows of very different length and difficulty: the spread pairing must cancel."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 120, size=n)
    per_token = rng.uniform(1.5, 4.5, size=n)
    return list(tokens * per_token), [int(t) for t in tokens]


LATENCIES = [0.40 + 0.01 * (i % 7) for i in range(16)]
BATCHES = [(256, 1.30), (256, 1.25), (250, 1.28), (240, 1.22)]


def test_identical_models_have_an_interval_at_zero_and_no_significant_change():
    nll, tokens = holdout()
    a, b = measured(nll, tokens, LATENCIES, BATCHES), measured(nll, tokens, LATENCIES, BATCHES)
    deltas = compare("baseline", "v1", a, b).deltas
    for name in ("loss", "perplexity", "latency_p50_ms", "latency_p95_ms", "tokens_per_s"):
        d = deltas[name]
        assert d.delta == 0 and d.low <= 0 <= d.high and d.direction == 0, name
    assert _change(a.metrics["loss"], b.metrics["loss"], "lower", "", deltas["loss"]) == "= no change"


def test_noisy_equal_models_are_no_significant_change():
    """Per-row differences that average out: the interval straddles zero, whatever the point says."""
    nll, tokens = holdout()
    rng = np.random.default_rng(7)
    noisy = [x + t * rng.normal(0, 0.05) for x, t in zip(nll, tokens)]
    a, b = measured(noisy, tokens, LATENCIES, BATCHES), measured(nll, tokens, LATENCIES, BATCHES)
    d = compare("baseline", "v1", a, b).deltas["loss"]
    assert d.delta != 0 and d.low < 0 < d.high and d.direction == 0
    text = _change(a.metrics["loss"], b.metrics["loss"], "lower", "", d)
    assert text.endswith(", no significant change") and "better" not in text and "worse" not in text


def test_a_clearly_worse_model_is_worse_and_a_constant_shift_is_exact_when_paired():
    """Every row costs 0.05 nats per token more: paired, every resample sees exactly +0.05, so the
    interval is that point; the rows' own spread (lengths 5-120, 1.5-4.5 nats) does not widen it."""
    nll, tokens = holdout()
    worse = [x + 0.05 * t for x, t in zip(nll, tokens)]
    slow = [s * 1.5 for s in LATENCIES]
    a, b = measured(worse, tokens, slow, BATCHES), measured(nll, tokens, LATENCIES, BATCHES)
    deltas = compare("baseline", "v1", a, b).deltas
    loss = deltas["loss"]
    assert loss.low == pytest.approx(0.05) and loss.high == pytest.approx(0.05) and loss.direction == 1
    assert (loss.unit, loss.units) == ("rows", 300)
    assert deltas["perplexity"].low > 0 and deltas["latency_p50_ms"].low > 0
    assert _change(a.metrics["loss"], b.metrics["loss"], "lower", "", loss).endswith(", worse")
    assert _change(b.metrics["loss"], a.metrics["loss"], "lower", "", Delta(-0.05, -0.05, -0.05)).endswith(
        ", better")
    lat = deltas["latency_p50_ms"]
    assert _change(a.metrics["latency_p50_ms"], b.metrics["latency_p50_ms"], "lower", "ms", lat).endswith(
        " ms, worse")


def test_the_interval_matches_the_normal_approximation_of_a_mean():
    """With one token per row the loss delta is the mean per-row difference: its 95% bootstrap
    interval is close to mean +- 1.96 sd / sqrt(n)."""
    rng = np.random.default_rng(3)
    n = 400
    base = rng.uniform(1, 5, size=n)
    diff = rng.normal(0.1, 0.5, size=n)
    low, high = bootstrap.ratio_interval((list(base + diff), [1] * n), (list(base), [1] * n))
    half = 1.96 * diff.std(ddof=1) / math.sqrt(n)
    assert low == pytest.approx(diff.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(diff.mean() + half, abs=0.15 * half)


def test_fixed_seed_reproduces_and_chunking_changes_nothing(monkeypatch):
    nll, tokens = holdout(n=50)
    other = [x * 1.01 for x in nll]
    first = bootstrap.ratio_interval((other, tokens), (nll, tokens))
    assert bootstrap.ratio_interval((other, tokens), (nll, tokens)) == first
    assert bootstrap.ratio_interval((other, tokens), (nll, tokens), seed=1) != first
    monkeypatch.setattr(bootstrap, "_CELLS", 7 * 50)  # 7 resamples per chunk instead of all at once
    assert bootstrap.ratio_interval((other, tokens), (nll, tokens)) == first
    assert statistics().resamples == 1000 and statistics().seed == 0 and statistics().confidence == 0.95


def test_too_few_units_or_unpaired_units_give_no_interval():
    assert bootstrap.ratio_interval(([5.0], [1.0]), ([4.0], [1.0])) is None  # one batch: no spread
    assert bootstrap.percentile_interval([1.0, 2.0], [1.0], 50) is None        # not paired
    nll, tokens = holdout(n=20)
    a = measured(nll, tokens, LATENCIES, [(256, 1.3)])
    b = measured(nll, tokens, LATENCIES, [(256, 1.1)])
    d = compare("baseline", "v1", a, b).deltas["tokens_per_s"]
    assert d.delta < 0 and d.low is None and d.direction == 0 and (d.unit, d.units) == ("batches", 1)
    assert _change(a.metrics["tokens_per_s"], b.metrics["tokens_per_s"], "higher", "", d).endswith(
        ", no interval (1 batch): not judged")


def test_size_is_exact_and_deltas_check_themselves():
    nll, tokens = holdout(n=20)
    a = measured(nll, tokens, LATENCIES, BATCHES, size=2e6)
    b = measured(nll, tokens, LATENCIES, BATCHES, size=1e6)
    size = compare("parent", "v1", a, b).deltas["size_bytes"]
    assert (size.method, size.delta, size.low, size.direction) == ("exact", 1e6, None, 1)
    assert _change(2e6, 1e6, "lower", "bytes", size) == "▲ +976.6 KiB (+100.0%), exact, worse"
    for bad, message in [(dict(delta=1.0, low=2.0, high=1.0), "is above high"),
                         (dict(delta=1.0, low=0.5), "both be numbers or both be null"),
                         (dict(delta=1.0, low=0.5, high=1.5, method="exact"), "an exact delta has no interval"),
                         (dict(delta=1.0, method="guess"), "method 'guess'")]:
        with pytest.raises(ResultsError, match=message):
            Delta(**bad)
