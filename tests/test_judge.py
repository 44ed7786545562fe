"""The LLM judge (issue 12, item 7): an evaluation's samples judged pairwise by a model behind a real
``gitops serve``-style server on 127.0.0.1, in both orders so position bias cancels out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.eval.judge import sample_score, summarize, verdict
from tests.conftest import run_gitops
from tests.ml_fixtures import base_model_dir, ml_cache_dir  # noqa: F401
from tests.serve_fixtures import REF, live_server, toy_ct2, toy_versions  # noqa: F401

GOLDEN = Path(__file__).parent / "golden" / "results-v3.json"


def test_verdicts_and_scores() -> None:
    assert verdict(" A") == "A" and verdict("B.") == "B" and verdict("Answer: B") == "B"
    assert verdict("BAD") is None and verdict(" and") is None     # letters inside words are not verdicts
    assert sample_score("A", "B") == 1.0       # the candidate won as A and as B
    assert sample_score("B", "A") == 0.0
    assert sample_score("A", "A") == 0.5       # always "A": position bias, cancelled
    assert sample_score(None, "B") == 0.5
    s = summarize("x:1", "judge", [("A", "B"), ("A", "B"), ("B", "A"), ("A", "A")])
    assert (s.win_rate, s.wins, s.losses, s.ties, s.consistent) == (0.625, 2, 1, 1, 0.75)
    assert s.low is not None and s.high is not None and s.low <= 0.625 <= s.high


def test_judge_against_a_real_server(toy_versions, tmp_path: Path) -> None:
    same = json.loads(GOLDEN.read_text())
    for sample in same["samples"]:
        sample["candidate"] = sample["baseline"] = sample["candidate"][:16]  # the toy judge reads 128 tokens
    same_path = tmp_path / "same.json"
    same_path.write_text(json.dumps(same))
    with live_server({"toy@v1": toy_versions["toy@v1"]}) as live:
        res = run_gitops("judge", str(GOLDEN), "--endpoint", live.url, "--model", REF, "--json")
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["samples"] == 3 and out["wins"] + out["losses"] + out["ties"] == 3
        assert 0.0 <= out["win_rate"] <= 1.0
        # identical completions: a greedy judge sees the same text in both orders, so whatever it
        # answers the two verdicts cancel: every sample is a tie
        tied = run_gitops("judge", str(same_path), "--endpoint", live.url, "--model", REF, "--json")
        assert tied.exit_code == 0, tied.stderr
        tie = json.loads(tied.stdout)
        assert (tie["win_rate"], tie["ties"], tie["consistent"]) == (0.5, 3, 0.0)
        text = run_gitops("judge", str(GOLDEN), "--endpoint", live.url, "--model", REF)
        assert text.exit_code == 0 and "candidate win rate" in text.stdout and "over 3 samples" in text.stdout


def test_an_unreachable_judge_is_one_sentence(tmp_path: Path) -> None:
    res = run_gitops("judge", str(GOLDEN), "--endpoint", "http://127.0.0.1:9", "--model", "x")
    assert res.exit_code == 1 and "the judge at 127.0.0.1:9 cannot be reached" in res.stderr
    assert "Traceback" not in res.stderr


def test_results_without_baseline_samples_are_refused(tmp_path: Path) -> None:
    doc = json.loads(GOLDEN.read_text())
    for sample in doc["samples"]:
        sample["baseline"] = None
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    res = run_gitops("judge", str(path), "--endpoint", "http://127.0.0.1:9", "--model", "x")
    assert res.exit_code == 1 and "no samples with a baseline completion" in res.stderr


@pytest.mark.parametrize("missing", ["--endpoint", "--model"])
def test_endpoint_and_model_are_required(missing: str) -> None:
    args = {"--endpoint": "http://127.0.0.1:9", "--model": "x"}
    args.pop(missing)
    res = run_gitops("judge", str(GOLDEN), *[a for kv in args.items() for a in kv])
    assert res.exit_code == 2 and missing in res.stderr
