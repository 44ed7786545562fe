"""Evaluation gates: a model's ``gates:`` list held against measured metrics. Pure functions.

Semantics (also in docs/results-schema.md):

- ``max: X`` / ``min: X``: the candidate's value must be ``<= X`` / ``>= X``. No baseline needed.
- ``max_increase_pct: P``: candidate ``<= baseline + |baseline| * P / 100`` (perplexity may rise by
  at most P %). ``max_decrease_pct: P``: candidate ``>= baseline - |baseline| * P / 100`` (tokens/s
  may fall by at most P %). ``|baseline|`` keeps the direction right for negative metrics; a
  baseline of 0 allows no change at all. A negative P demands an improvement.
- A relative bound with no baseline model, or a baseline without that metric, is *skipped*: it
  counts as passed and its message says why. Decision: the first candidate of a model has nothing
  to compare with, and blocking it would make the first promotion impossible; the report shows the
  skip so a reviewer sees the gate did not bite. Absolute bounds still apply.
- A metric the candidate lacks (or measured as null, i.e. not finite) fails: a gate that cannot be
  checked must not let a model through.
- ``significant: true`` on a relative bound judges the change by its confidence interval (the
  paired bootstrap of candidate minus baseline in the document's comparison) instead of its point
  value: the gate fails only when the whole interval lies beyond the bound, i.e. the candidate is
  *significantly* worse than allowed. ``{metric: accuracy, max_decrease_pct: 0, significant: true}``
  is "accuracy not significantly worse than the baseline", the default gate of a model created
  with ``--task classification``. Without an interval (too few rows) it is skipped, saying why.
- ``judge_win_rate`` is the LLM judge's win rate of the candidate over the baseline
  (:mod:`gitops.eval.judge`). Without a baseline there is nothing to judge, so a gate on it is
  skipped like a relative bound; with a baseline but no judge run, it fails like any missing metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gitops.core.schema import GATE_BOUNDS, Gate
from gitops.eval.results import Delta, GateResult

JUDGE_METRIC = "judge_win_rate"  # needs a baseline, like a relative bound

# How each bound reads in a message, with the comparison the candidate must satisfy.
_WORDS = {
    "max": "at most",
    "min": "at least",
    "max_increase_pct": "may rise by at most",
    "max_decrease_pct": "may fall by at most",
}


def format_number(value: float | None, digits: int = 4) -> str:
    """A short, stable rendering for messages and reports: ``digits`` significant digits, no
    exponent for everyday magnitudes, ``n/a`` for a missing value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-4):
        return f"{value:.{digits - 1}e}"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with enough digits that different values never print the same (a failed
    gate reading "12.65 > 12.65" would look like a bug)."""
    for digits in range(4, 13):
        left, right = format_number(a, digits), format_number(b, digits)
        if left != right or a == b:
            break
    return left, right


def describe_gate(metric: str, bound: str, threshold: float, significant: bool = False) -> str:
    """``perplexity may rise by at most 2%`` — the gate as a reviewer reads it; with ``significant``,
    ``accuracy not significantly below the baseline`` (more than P% below, for P > 0)."""
    unit = "%" if bound.endswith("_pct") else ""
    if significant and bound.endswith("_pct"):
        side = "below" if bound == "max_decrease_pct" else "above"
        more = f"more than {format_number(threshold)}% " if threshold else ""
        return f"{metric} not significantly {more}{side} the baseline"
    return f"{metric} {_WORDS[bound]} {format_number(threshold)}{unit}"


def evaluate_gates(gates: list[Gate], candidate: Mapping[str, float | None],
                   baseline: Mapping[str, float | None] | None,
                   deltas: Mapping[str, Delta] | None = None) -> list[GateResult]:
    """Hold the candidate's metrics to every bound of every gate, in order.

    ``baseline`` is None when there is no baseline model; ``deltas`` are the comparison with it
    (what a ``significant`` gate reads its interval from). Returns one :class:`GateResult` per
    bound; the verdict is ``all(r.passed for r in results)``.
    """
    results = []
    for gate in gates:
        for bound in GATE_BOUNDS:
            threshold = getattr(gate, bound)
            if threshold is not None:
                significant = gate.significant and bound.endswith("_pct")
                results.append(check_bound(gate.metric, bound, float(threshold), candidate, baseline,
                                           (deltas or {}).get(gate.metric) if significant else None, significant))
    return results


def check_bound(metric: str, bound: str, threshold: float, candidate: Mapping[str, float | None],
                baseline: Mapping[str, float | None] | None, delta: Delta | None = None,
                significant: bool = False) -> GateResult:
    """One bound of one gate; see the module docstring for the rules."""
    what = describe_gate(metric, bound, threshold, significant)
    cand = _finite(candidate.get(metric))
    base = _finite(baseline.get(metric)) if baseline is not None else None
    relative = bound.endswith("_pct")

    def result(passed: bool, message: str, limit: float | None = None, skipped: bool = False) -> GateResult:
        return GateResult(metric=metric, bound=bound, threshold=threshold, passed=passed, message=message,
                          candidate=cand, baseline=base, limit=limit, skipped=skipped, significant=significant)

    if cand is None and metric == JUDGE_METRIC and baseline is None:
        return result(True, f"{what}: skipped, there is no baseline for the judge to compare with", skipped=True)
    if cand is None:
        why = "has no finite value for" if metric in candidate else "has no metric"
        hint = " (no judge ran: configure eval.judge in gitops.yaml)" if metric == JUDGE_METRIC else ""
        return result(False, f"{what}: the candidate {why} '{metric}', so the gate cannot pass{hint}")
    if relative and base is None:
        why = ("there is no baseline to compare with" if baseline is None
               else f"the baseline has no finite '{metric}' to compare with")
        return result(True, f"{what}: skipped, {why}", skipped=True)
    limit = _limit(bound, threshold, base)
    upper = bound in ("max", "max_increase_pct")
    if significant:
        return _significant(what, upper, limit, base, delta, result)
    passed = cand <= limit if upper else cand >= limit
    sign = ("≤" if passed else ">") if upper else ("≥" if passed else "<")
    context = f" (baseline {format_number(base)})" if relative else ""
    shown_cand, shown_limit = format_pair(cand, limit)
    return result(passed, f"{what}: {shown_cand} {sign} {shown_limit}{context}", limit)


def _significant(what: str, upper: bool, limit: float, base: float | None, delta: Delta | None, result) -> GateResult:
    """A relative bound judged on the interval of the change: it fails only when the whole interval
    lies beyond the bound (the candidate is significantly worse than allowed)."""
    if delta is None or delta.low is None or delta.high is None:
        return result(True, f"{what}: skipped, the comparison has no interval to judge significance by",
                      skipped=True)
    assert base is not None  # a significance gate is relative: skipped above when there is no base
    low, high = base + delta.low, base + delta.high   # the candidate's value, as far as the rows tell
    beyond = low > limit if upper else high < limit
    shown = f"{format_number(delta.delta)} [{format_number(delta.low)}, {format_number(delta.high)}]"
    word = ("above" if upper else "below") if beyond else "not beyond"
    return result(not beyond, f"{what}: change {shown}, the interval is {word} the bound "
                              f"{format_number(limit)} (baseline {format_number(base)})", limit)


def _limit(bound: str, threshold: float, base: float | None) -> float:
    if bound in ("max", "min"):
        return threshold
    assert base is not None
    change = abs(base) * threshold / 100.0
    return base + change if bound == "max_increase_pct" else base - change


def _finite(value: float | None) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
