"""The candidate against another model measured on the same units: every metric's delta, with the
paired bootstrap interval of :mod:`gitops.eval.bootstrap`.

What is resampled for each metric (the unit the metric is made of):

- ``loss`` and ``perplexity``: holdout rows, each its summed NLL and token count, so a resample's
  loss is ``sum(nll) / sum(tokens)`` exactly as the metric itself;
- ``latency_p50_ms`` / ``latency_p95_ms``: latency requests (the same prompts, in the same order);
- ``tokens_per_s``: throughput batches, each its tokens and seconds (few units: a wide interval, or
  none with a single batch);
- ``size_bytes``: nothing; the size has no sampling noise, so its delta is ``exact``.

A metric with no per-unit numbers gets its delta without an interval.
"""

from __future__ import annotations

from typing import Any

from gitops.eval import bootstrap
from gitops.eval.harness import Measurement
from gitops.eval.results import Comparison, Delta, Statistics

LATENCY_PERCENTILES = {"latency_p50_ms": 50.0, "latency_p95_ms": 95.0}
EXACT = ("size_bytes",)


def statistics() -> Statistics:
    """The fixed settings every interval uses (recorded in the results document)."""
    return Statistics(resamples=bootstrap.RESAMPLES, seed=bootstrap.SEED, confidence=bootstrap.CONFIDENCE)


def compare(against: str, version: str, cand: Measurement, other: Measurement,
            stats: Statistics | None = None) -> Comparison:
    """Every metric both measurements have: candidate minus ``other``, with its interval."""
    stats = stats or statistics()
    deltas = {name: metric_delta(name, cand, other, stats) for name in cand.metrics if name in other.metrics}
    return Comparison(against=against, version=version, deltas=deltas)


def metric_delta(name: str, cand: Measurement, other: Measurement, stats: Statistics) -> Delta:
    """One metric's delta; the interval is resampled over the units the metric is computed from."""
    c, o = cand.metrics.get(name), other.metrics.get(name)
    delta = c - o if c is not None and o is not None else None
    if name in EXACT:
        return Delta(delta=delta, method="exact")
    unit, units, interval = _interval(name, cand, other, stats) if delta is not None else (None, 0, None)
    low, high = interval if interval is not None else (None, None)
    return Delta(delta=delta, low=low, high=high, method="bootstrap", unit=unit, units=units)


def _interval(name: str, cand: Measurement, other: Measurement, stats: Statistics
              ) -> tuple[str | None, int, tuple[float, float] | None]:
    settings: dict[str, Any] = {"resamples": stats.resamples, "seed": stats.seed, "confidence": stats.confidence}
    if name in ("loss", "perplexity"):
        import numpy as np

        interval = bootstrap.ratio_interval((cand.row_nll, cand.row_tokens), (other.row_nll, other.row_tokens),
                                            transform=np.exp if name == "perplexity" else None, **settings)
        return "rows", len(cand.row_nll), interval
    if name in LATENCY_PERCENTILES:
        interval = bootstrap.percentile_interval(cand.latencies, other.latencies, LATENCY_PERCENTILES[name],
                                                 scale=1000.0, **settings)
        return "requests", len(cand.latencies), interval
    if name == "tokens_per_s":
        interval = bootstrap.ratio_interval((cand.batch_tokens, cand.batch_seconds),
                                            (other.batch_tokens, other.batch_seconds), **settings)
        return "batches", len(cand.batch_tokens), interval
    return None, 0, None
