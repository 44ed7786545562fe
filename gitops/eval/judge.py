"""An LLM judge: a stronger model, behind any OpenAI-compatible endpoint, picks the better completion.

For each sample of an evaluation (a prompt, the candidate's completion, the baseline's), the judge
is asked twice, once with the candidate as answer A and once as answer B, so a judge that prefers
a position cancels itself out. A sample scores 1 when the candidate wins both orders, 0 when it
loses both, and 0.5 otherwise (a split verdict, or a reply naming neither). The win rate is the
mean score, with the same 95% bootstrap interval the other metrics get (:mod:`gitops.eval.bootstrap`);
``consistent`` is the share of samples the judge decided the same way in both orders.

The judge is greedy (temperature 0) and asked for one letter; the first standalone ``A`` or ``B``
in its reply is its verdict. Requests go through :mod:`gitops.adapters.http`, the one HTTP border.

Two paths share one core (:func:`judge_pairs`): ``gitops judge FILE`` judges a results file after
the fact, and ``gitops eval`` with an ``eval.judge`` in ``gitops.yaml`` (:func:`check` before any
model loads, :func:`judge_samples` once both sides are measured) records the verdict in the
results document. Results and messages name the endpoint's host only: a URL may carry a token.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from gitops.adapters import http
from gitops.core.settings import JudgeConfig
from gitops.errors import EvalError, shown
from gitops.eval import bootstrap
from gitops.eval.gates import JUDGE_METRIC
from gitops.eval.results import EvalResults, JudgeSummary, Sample

# The text and both continuations go in as JSON strings, one line each: whatever a completion holds
# (a newline, "B: ...", "Better: A", a quote) stays inside its quotes and cannot open a line of its own.
JUDGE_PROMPT = "Which continuation of the text is better? Reply A or B.\n\nText: {prompt}\nA: {a}\nB: {b}\nBetter:"
MAX_SAMPLES = 500
MAX_FIELD_CHARS = 4000
MAX_MODELS_SHOWN = 5
GATE_METRIC = JUDGE_METRIC  # what a model's gates call the win rate (model.yaml: {min: 0.5})
_VERDICT = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|token)\s+[^\s\"',;]+")


def judge_prompt(prompt: str, a: str, b: str) -> str:
    """The question put to the judge, each text quoted as a JSON string (see :data:`JUDGE_PROMPT`)."""
    quote = lambda text: json.dumps(text[:MAX_FIELD_CHARS], ensure_ascii=False)  # noqa: E731
    return JUDGE_PROMPT.format(prompt=quote(prompt), a=quote(a), b=quote(b))


def scrub(text: str, token: str | None) -> str:
    """``text`` from a judge as a message may quote it: the token (a judge may echo the request's
    headers) and any ``Bearer``/``Basic`` credential replaced by ``***``."""
    if token:
        text = text.replace(token, "***")
    return _CREDENTIAL.sub(lambda m: m.group(1) + " ***", text)


def verdict(reply: str) -> str | None:
    """``A`` or ``B``: the first standalone letter in the judge's reply; None if it names neither."""
    found = _VERDICT.search(reply)
    return found.group(1) if found else None


def sample_score(first: str | None, second: str | None) -> float:
    """The candidate's score from the verdicts with it as A (``first``) and as B (``second``)."""
    wins = (first == "A") + (second == "B")
    losses = (first == "B") + (second == "A")
    return 1.0 if wins == 2 else 0.0 if losses == 2 else 0.5


def summarize(host: str, model: str, verdicts: list[tuple[str | None, str | None]]) -> JudgeSummary:
    """The win rate, its 95% bootstrap interval and the counts, from each sample's two verdicts."""
    scores = [sample_score(a, b) for a, b in verdicts]
    n = len(scores)
    ones = [1.0] * n
    decided = sum(1 for a, b in verdicts if a is not None and b is not None and a != b)
    ci = bootstrap.ratio_interval((scores, ones), ([0.0] * n, ones))
    return JudgeSummary(host=host, model=model, samples=n, win_rate=sum(scores) / n if n else 0.0,
                        low=ci[0] if ci else None, high=ci[1] if ci else None, wins=scores.count(1.0),
                        losses=scores.count(0.0), ties=scores.count(0.5), consistent=decided / n if n else 0.0)


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def ask(endpoint: str, model: str, prompt: str, *, timeout_s: float = 60.0, token: str | None = None) -> str:
    """The judge's reply to ``prompt`` (greedy, two tokens) from ``endpoint``'s /v1/completions."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 2, "temperature": 0}).encode()
    url = endpoint.rstrip("/") + "/v1/completions"
    resp = _answer(lambda: http.post(url, body, _headers(token), timeout_s), url, token)
    try:
        return str(json.loads(resp.text)["choices"][0]["text"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise EvalError(f"the judge at {http.host_of(url)} did not answer like an OpenAI completions "
                        "endpoint (no choices[0].text)") from None


def _answer(send: Callable[[], http.HttpResponse], url: str, token: str | None) -> http.HttpResponse:
    """The 200 response of ``send()``, or one sentence naming the judge's host (what the judge said
    quoted without the token, which a judge may echo)."""
    host = http.host_of(url)
    try:
        resp = send()
    except http.HttpUnreachable as exc:
        raise EvalError(f"the judge at {host} cannot be reached: {exc}") from None
    if resp.status in (401, 403):
        raise EvalError(f"the judge at {host} refused the request (HTTP {resp.status}); check the token in "
                        "the environment variable named by eval.judge.token_env")
    if resp.status != 200:
        raise EvalError(f"the judge at {host} answered HTTP {resp.status}: {shown(scrub(resp.text, token), 200)}")
    return resp


def check_endpoint(endpoint: str, model: str, *, timeout_s: float = 10.0, token: str | None = None) -> None:
    """Refuse, in one sentence, a judge that does not answer ``GET /v1/models`` or does not serve
    ``model`` (listed as is, or as the ``MODEL`` of ``MODEL@ALIAS``, which is how ``gitops serve``
    lists itself): checked before any model is loaded, so a typo costs seconds, not an evaluation."""
    url = endpoint.rstrip("/") + "/v1/models"
    resp = _answer(lambda: http.get(url, _headers(token), timeout_s), url, token)
    try:
        served = [scrub(str(m["id"]), token) for m in json.loads(resp.text)["data"]]
    except (ValueError, KeyError, TypeError):
        raise EvalError(f"the judge at {http.host_of(url)} did not answer GET /v1/models like an OpenAI "
                        "endpoint (no data[].id)") from None
    # gitops serve lists its model's name and the version it serves, and answers to MODEL@ALIAS too
    if model not in served and model.split("@", 1)[0] not in served:
        names = ", ".join(shown(m, 80) for m in served[:MAX_MODELS_SHOWN]) or "nothing"
        more = f" and {len(served) - MAX_MODELS_SHOWN} more" if len(served) > MAX_MODELS_SHOWN else ""
        raise EvalError(f"the judge at {http.host_of(url)} does not serve the model '{shown(model, 80)}' "
                        f"(it serves {names}{more})")


def judge_pairs(endpoint: str, model: str, items: list[tuple[str, str, str]], *, timeout_s: float = 60.0,
                token: str | None = None) -> JudgeSummary:
    """Judge (prompt, candidate, baseline) triples in both orders: the core both paths share."""
    if len(items) > MAX_SAMPLES:
        raise EvalError(f"{len(items)} samples to judge; at most {MAX_SAMPLES}")
    verdicts = []
    for p, c, b in items:
        first = ask(endpoint, model, judge_prompt(p, c, b), timeout_s=timeout_s, token=token)
        second = ask(endpoint, model, judge_prompt(p, b, c), timeout_s=timeout_s, token=token)
        verdicts.append((verdict(first), verdict(second)))
    return summarize(http.host_of(endpoint), model, verdicts)


def pairs_of(samples: list[Sample]) -> list[tuple[str, str, str]]:
    """The (prompt, candidate, baseline) triples of the samples that have a baseline completion."""
    return [(s.prompt, s.candidate, s.baseline) for s in samples if s.baseline is not None]


def judge_results(results: EvalResults, endpoint: str, model: str) -> JudgeSummary:
    """Judge the samples of an evaluation (candidate vs baseline completions of the same prompts)."""
    items = pairs_of(results.samples)
    if not items:
        raise EvalError("the results have no samples with a baseline completion to judge "
                        "(run gitops eval with a baseline and --samples > 0)")
    check_endpoint(endpoint, model)  # one request that names a wrong endpoint or model, before 2 per sample
    return judge_pairs(endpoint, model, items)


def judge_file(path: Path, endpoint: str, model: str) -> JudgeSummary:
    """:func:`judge_results` on a results file written by ``gitops eval --out``."""
    return judge_results(EvalResults.load(path), endpoint, model)


# --- inside gitops eval (the eval.judge section of gitops.yaml) ---------------------------------

def token_of(config: JudgeConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token from the environment variable ``token_env`` names (None without one)."""
    if config.token_env is None:
        return None
    token = (os.environ if env is None else env).get(config.token_env)
    if not token:
        raise EvalError(f"eval.judge.token_env names the environment variable {config.token_env}, "
                        "which is not set; set it to the judge's token")
    return token


def check(config: JudgeConfig) -> None:
    """:func:`check_endpoint` for a configured judge (its token read from the environment)."""
    check_endpoint(config.endpoint, config.model, timeout_s=min(config.timeout_s, 30.0), token=token_of(config))


def judge_samples(config: JudgeConfig, samples: list[Sample]) -> JudgeSummary | None:
    """Judge the first ``config.samples`` samples that have a baseline (all by default); None when
    there are none (``--samples 0``)."""
    items = pairs_of(samples)[:config.samples]
    if not items:
        return None
    return judge_pairs(config.endpoint, config.model, items, timeout_s=config.timeout_s, token=token_of(config))
