"""Gate rules: every bound, missing metrics, missing baselines, boundaries and messages."""

from __future__ import annotations

import math

import pytest

from gitops.core.schema import Gate
from gitops.eval.gates import check_bound, describe_gate, evaluate_gates, format_number, format_pair
from gitops.eval.results import GateResult


def one(gate: Gate, candidate: dict, baseline: dict | None) -> GateResult:
    (result,) = evaluate_gates([gate], candidate, baseline)
    return result


def test_max_increase_pct_uses_the_baseline():
    gate = Gate("perplexity", max_increase_pct=2)
    assert one(gate, {"perplexity": 10.2}, {"perplexity": 10.0}).passed        # exactly +2%: allowed
    failed = one(gate, {"perplexity": 10.21}, {"perplexity": 10.0})
    assert not failed.passed and failed.limit == pytest.approx(10.2)
    assert failed.message == "perplexity may rise by at most 2%: 10.21 > 10.2 (baseline 10)"
    assert one(gate, {"perplexity": 9.0}, {"perplexity": 10.0}).passed         # improvement


def test_max_decrease_pct_for_higher_is_better_metrics():
    gate = Gate("tokens_per_s", max_decrease_pct=10)
    assert one(gate, {"tokens_per_s": 90.0}, {"tokens_per_s": 100.0}).passed
    result = one(gate, {"tokens_per_s": 89.9}, {"tokens_per_s": 100.0})
    assert not result.passed and "89.9 < 90" in result.message


def test_absolute_bounds_need_no_baseline():
    assert one(Gate("latency_p95_ms", max=500), {"latency_p95_ms": 500.0}, None).passed
    assert not one(Gate("latency_p95_ms", max=500), {"latency_p95_ms": 500.5}, None).passed
    assert one(Gate("accuracy", min=0.5), {"accuracy": 0.5}, None).passed
    low = one(Gate("accuracy", min=0.5), {"accuracy": 0.49}, None)
    assert not low.passed and low.message == "accuracy at least 0.5: 0.49 < 0.5"


def test_a_gate_with_two_bounds_gives_two_results_in_bound_order():
    results = evaluate_gates([Gate("latency_p95_ms", max=500, min=1, max_increase_pct=10)],
                             {"latency_p95_ms": 0.5}, {"latency_p95_ms": 0.4})
    assert [(r.bound, r.passed) for r in results] == [("max", True), ("min", False), ("max_increase_pct", False)]


def test_relative_gate_without_baseline_is_skipped_and_says_so():
    result = one(Gate("perplexity", max_increase_pct=2), {"perplexity": 99.0}, None)
    assert result.passed and result.skipped and result.limit is None
    assert result.message == "perplexity may rise by at most 2%: skipped, there is no baseline to compare with"
    partial = one(Gate("perplexity", max_increase_pct=2), {"perplexity": 99.0}, {"loss": 1.0})
    assert partial.skipped and "the baseline has no finite 'perplexity'" in partial.message
    # An absolute bound is never skipped.
    assert not one(Gate("perplexity", max=50), {"perplexity": 99.0}, None).skipped


def test_missing_or_non_finite_candidate_metric_fails():
    missing = one(Gate("perplexity", max=50), {"loss": 1.0}, {"perplexity": 10.0})
    assert not missing.passed and not missing.skipped
    assert "the candidate has no metric 'perplexity'" in missing.message
    for bad in (None, math.inf, math.nan):
        result = one(Gate("perplexity", max_increase_pct=2), {"perplexity": bad}, {"perplexity": 10.0})
        assert not result.passed and "has no finite value for 'perplexity'" in result.message


def test_negative_and_zero_baselines_keep_the_direction():
    # A log-likelihood of -2.0 may rise (towards 0) by 10% of its size: up to -1.8.
    assert one(Gate("loglik", max_increase_pct=10), {"loglik": -1.8}, {"loglik": -2.0}).passed
    assert not one(Gate("loglik", max_increase_pct=10), {"loglik": -1.7}, {"loglik": -2.0}).passed
    # A baseline of 0 allows no change at all.
    assert one(Gate("errors", max_increase_pct=50), {"errors": 0.0}, {"errors": 0.0}).passed
    assert not one(Gate("errors", max_increase_pct=50), {"errors": 0.001}, {"errors": 0.0}).passed


def test_negative_percentage_demands_an_improvement():
    gate = Gate("loss", max_increase_pct=-5)
    assert one(gate, {"loss": 0.95}, {"loss": 1.0}).passed
    assert not one(gate, {"loss": 0.96}, {"loss": 1.0}).passed


def test_no_gates_no_results_and_inputs_untouched():
    candidate = {"loss": 1.0}
    assert evaluate_gates([], candidate, None) == []
    evaluate_gates([Gate("loss", max=2)], candidate, None)
    assert candidate == {"loss": 1.0}


def test_messages_never_show_equal_numbers_for_a_failure():
    result = check_bound("perplexity", "max", 12.65, {"perplexity": 12.6500001}, None)
    assert not result.passed
    left, right = result.message.split(": ")[1].split(" > ")
    assert left != right
    assert format_pair(1.0, 1.0) == ("1", "1")


def test_number_formatting_and_descriptions():
    assert [format_number(v) for v in (None, math.nan, 0.0, 12.3456, 123456.7, 1.5e9, 2e-5)] == \
        ["n/a", "n/a", "0", "12.35", "123,457", "1.500e+09", "2.000e-05"]
    assert describe_gate("tokens_per_s", "max_decrease_pct", 20.0) == "tokens_per_s may fall by at most 20%"
    assert describe_gate("latency_p95_ms", "max", 500.0) == "latency_p95_ms at most 500"
