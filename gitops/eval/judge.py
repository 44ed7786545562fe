"""An LLM judge: a stronger model, behind any OpenAI-compatible endpoint, picks the better completion.

For each sample of an evaluation (a prompt, the candidate's completion, the baseline's), the judge
is asked twice, once with the candidate as answer A and once as answer B, so a judge that prefers
a position cancels itself out. A sample scores 1 when the candidate wins both orders, 0 when it
loses both, and 0.5 otherwise (a split verdict, or a reply naming neither). The win rate is the
mean score, with the same 95% bootstrap interval the other metrics get (:mod:`gitops.eval.bootstrap`);
``consistent`` is the share of samples the judge decided the same way in both orders.

The judge is greedy (temperature 0) and asked for one letter; the first standalone ``A`` or ``B``
in its reply is its verdict. Requests go through :mod:`gitops.adapters.http`, the one HTTP border.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gitops.adapters import http
from gitops.errors import EvalError
from gitops.eval import bootstrap
from gitops.eval.results import EvalResults

JUDGE_PROMPT = "Which continuation of the text is better? Reply A or B.\n\nText: {prompt}\nA: {a}\nB: {b}\nBetter:"
MAX_SAMPLES = 500
MAX_FIELD_CHARS = 4000
_VERDICT = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")


@dataclass
class JudgeResult:
    endpoint: str
    model: str
    samples: int
    win_rate: float
    win_rate_ci: tuple[float, float] | None
    wins: int
    losses: int
    ties: int
    consistent: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["win_rate_ci"] = list(self.win_rate_ci) if self.win_rate_ci else None
        return out


def verdict(reply: str) -> str | None:
    """``A`` or ``B``: the first standalone letter in the judge's reply; None if it names neither."""
    found = _VERDICT.search(reply)
    return found.group(1) if found else None


def sample_score(first: str | None, second: str | None) -> float:
    """The candidate's score from the verdicts with it as A (``first``) and as B (``second``)."""
    wins = (first == "A") + (second == "B")
    losses = (first == "B") + (second == "A")
    return 1.0 if wins == 2 else 0.0 if losses == 2 else 0.5


def summarize(endpoint: str, model: str, verdicts: list[tuple[str | None, str | None]]) -> JudgeResult:
    scores = [sample_score(a, b) for a, b in verdicts]
    n = len(scores)
    ones = [1.0] * n
    decided = sum(1 for a, b in verdicts if a is not None and b is not None and a != b)
    return JudgeResult(endpoint, model, n, sum(scores) / n if n else 0.0,
                       bootstrap.ratio_interval((scores, ones), ([0.0] * n, ones)),
                       scores.count(1.0), scores.count(0.0), scores.count(0.5), decided / n if n else 0.0)


def ask(endpoint: str, model: str, prompt: str, *, timeout_s: float = 60.0) -> str:
    """The judge's reply to ``prompt`` (greedy, two tokens) from ``endpoint``'s /v1/completions."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 2, "temperature": 0}).encode()
    url = endpoint.rstrip("/") + "/v1/completions"
    try:
        resp = http.post(url, body, {"Content-Type": "application/json"}, timeout_s)
    except http.HttpUnreachable as exc:
        raise EvalError(f"the judge at {http.host_of(url)} cannot be reached: {exc}") from None
    if resp.status != 200:
        raise EvalError(f"the judge at {http.host_of(url)} answered HTTP {resp.status}: {resp.text[:200]}")
    try:
        return str(json.loads(resp.text)["choices"][0]["text"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise EvalError(f"the judge at {http.host_of(url)} did not answer like an OpenAI completions "
                        "endpoint (no choices[0].text)") from None


def judge_pairs(endpoint: str, model: str, items: list[tuple[str, str, str]]) -> JudgeResult:
    """Judge (prompt, candidate, baseline) triples in both orders."""
    if len(items) > MAX_SAMPLES:
        raise EvalError(f"{len(items)} samples to judge; at most {MAX_SAMPLES}")
    verdicts = []
    for prompt, cand, base in items:
        p, c, b = (t[:MAX_FIELD_CHARS] for t in (prompt, cand, base))
        verdicts.append((verdict(ask(endpoint, model, JUDGE_PROMPT.format(prompt=p, a=c, b=b))),
                         verdict(ask(endpoint, model, JUDGE_PROMPT.format(prompt=p, a=b, b=c)))))
    return summarize(endpoint, model, verdicts)


def judge_results(results: EvalResults, endpoint: str, model: str) -> JudgeResult:
    """Judge the samples of an evaluation (candidate vs baseline completions of the same prompts)."""
    items = [(s.prompt, s.candidate, s.baseline) for s in results.samples if s.baseline is not None]
    if not items:
        raise EvalError("the results have no samples with a baseline completion to judge "
                        "(run gitops eval with a baseline and --samples > 0)")
    return judge_pairs(endpoint, model, items)


def judge_file(path: Path, endpoint: str, model: str) -> JudgeResult:
    """:func:`judge_results` on a results file written by ``gitops eval --out``."""
    return judge_results(EvalResults.load(path), endpoint, model)
