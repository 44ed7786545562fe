"""The LLM judge inside ``gitops eval`` (issue 12, item 7): configured in gitops.yaml's ``eval.judge``,
checked before any model loads, run against a real ``gitops serve``-style server on 127.0.0.1, recorded
in the results document and shown in the report."""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitops.core.settings import JudgeConfig
from gitops.eval.results import EvalResults
from tests.conftest import run_gitops
from tests.eval_fixtures import FAST, MODEL, EvalRepo
from tests.serve_fixtures import REF, live_server

GOLDEN = Path(__file__).parent / "golden" / "results-v3.json"


def _judge_yaml(endpoint: str, model: str = REF, extra: str = "") -> str:
    return f"eval:\n  judge:\n    endpoint: {endpoint}\n    model: {model}\n{extra}"


class _Settings:
    """Write the repo's gitops.yaml for one test and put the original back after."""

    def __init__(self, repo: EvalRepo) -> None:
        self.path = repo.root / "gitops.yaml"
        self.original = self.path.read_text()

    def write(self, text: str) -> None:
        self.path.write_text(self.original + text)

    def restore(self) -> None:
        self.path.write_text(self.original)


@pytest.fixture
def settings(eval_repo):
    s = _Settings(eval_repo)
    yield s
    s.restore()


def _answered(live, route: str) -> float:
    """Requests the server answered on ``route``, from its own metrics (what the judge server saw)."""
    return sum(s.value for m in live.state.metrics.registry.collect() for s in m.samples
               if s.name == "gitops_serve_requests_total" and s.labels.get("route") == route)


def _spy_model_loads(monkeypatch) -> list[str]:
    """Record every model the evaluation opens (it must open none when the judge is refused)."""
    from gitops.ml import backends

    opened: list[str] = []
    real = backends.open_backend

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(backends, "open_backend", spy)
    return opened


def test_eval_with_the_judge_in_gitops_yaml(eval_repo, settings, toy_versions, tmp_path, monkeypatch):
    """gitops.yaml configures the judge; the eval records a judge section whose counts are what the
    server answered (its own request counter) and what ``gitops judge`` finds on the same file."""
    out = tmp_path / "results.json"
    with live_server({"toy@v1": toy_versions["toy@v1"]}) as live:
        settings.write(_judge_yaml(live.url, extra="    samples: 5\n    timeout_s: 30\n"))
        before = _answered(live, "/v1/completions"), _answered(live, "/v1/models")
        res = run_gitops("eval", f"{MODEL}@v3", "--out", str(out), *FAST, cwd=eval_repo.root)  # FAST: --samples 4
        assert res.exit_code == 0, res.stderr
        host = live.url.split("//", 1)[1].rstrip("/")
        assert f"judge: {REF} at {host}" in res.stderr
        results = EvalResults.load(out)
        judged = results.judge
        assert judged is not None and (judged.host, judged.model) == (host, REF)
        # eval.judge.samples 5 > --samples 4: five completions were made, so five could be judged
        assert results.generation.samples == len(results.samples) == judged.samples == 5
        assert judged.wins + judged.losses + judged.ties == 5
        assert _answered(live, "/v1/completions") - before[0] == 2 * 5  # both orders of every sample
        assert _answered(live, "/v1/models") - before[1] == 1           # the check before loading
        again = run_gitops("judge", str(out), "--endpoint", live.url, "--model", REF, "--json")
        assert again.exit_code == 0, again.stderr
        independent = json.loads(again.stdout)
    for key in ("samples", "wins", "losses", "ties", "win_rate", "consistent", "low", "high"):
        assert independent[key] == getattr(judged, key), key
    assert "judge " + REF in res.stdout  # the summary printed by gitops eval
    report = run_gitops("report", str(out))
    assert report.exit_code == 0, report.stderr
    line = next(ln for ln in report.stdout.splitlines() if ln.startswith("Judge ("))
    assert line.startswith(f"Judge ({REF} at {host}): candidate wins {judged.win_rate:.0%} ")
    assert f"of 5 samples, both orders; consistent {judged.consistent:.0%}" in line


def test_an_unreachable_judge_stops_eval_before_any_model_loads(eval_repo, settings, tmp_path,
                                                                monkeypatch):
    opened = _spy_model_loads(monkeypatch)
    settings.write(_judge_yaml("http://127.0.0.1:9"))
    out = tmp_path / "results.json"
    res = run_gitops("eval", f"{MODEL}@v3", "--out", str(out), *FAST, cwd=eval_repo.root)
    assert res.exit_code == 1
    assert "the judge at 127.0.0.1:9 cannot be reached" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and opened == []


def test_a_pull_requests_own_gitops_yaml_does_not_choose_the_judge(eval_repo, settings, tmp_path):
    """With --baseline-rev (the evaluate workflow), eval.judge comes from gitops.yaml at that commit:
    the PR's checkout pointing the judge (and the holdout's text) elsewhere is not obeyed."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=eval_repo.root, check=True, capture_output=True,
                              text=True).stdout.strip()

    start = git("rev-parse", "HEAD")
    try:
        settings.write(_judge_yaml("http://127.0.0.1:9"))
        git("commit", "-qam", "base: the admins' judge")
        base = git("rev-parse", "HEAD")
        settings.write(_judge_yaml("http://127.0.0.1:7"))
        git("commit", "-qam", "the PR points the judge elsewhere")
        args = ("eval", f"{MODEL}@v3", "--out", str(tmp_path / "r.json"), *FAST)
        res = run_gitops(*args, cwd=eval_repo.root)
        assert res.exit_code == 1 and "the judge at 127.0.0.1:7 cannot be reached" in res.stderr
        res = run_gitops(*args, "--baseline", f"{MODEL}@production", "--baseline-rev", base, cwd=eval_repo.root)
        assert res.exit_code == 1 and "the judge at 127.0.0.1:9 cannot be reached" in res.stderr, res.stderr
    finally:
        git("reset", "-q", "--hard", start)


def test_a_judge_that_does_not_serve_the_model_and_the_cli_override(eval_repo, settings, toy_versions,
                                                                    tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    with live_server({"toy@v1": toy_versions["toy@v1"]}) as live:
        opened = _spy_model_loads(monkeypatch)  # the server (in this process) has loaded its own by now
        settings.write(_judge_yaml(live.url, model="judge@nope"))
        res = run_gitops("eval", f"{MODEL}@v3", "--out", str(out), *FAST, cwd=eval_repo.root)
        assert res.exit_code == 1
        assert "does not serve the model 'judge@nope' (it serves toy, toy@v1)" in res.stderr
        # the options lay over the file: the endpoint given wins (and is unreachable)
        res = run_gitops("eval", f"{MODEL}@v3", "--out", str(out), "--judge-endpoint", "http://127.0.0.1:9",
                         "--judge-model", REF, *FAST, cwd=eval_repo.root)
        assert res.exit_code == 1 and "the judge at 127.0.0.1:9 cannot be reached" in res.stderr
    assert not out.exists() and opened == []


def test_a_missing_token_variable_is_one_sentence(eval_repo, settings, tmp_path, monkeypatch):
    monkeypatch.delenv("GITOPS_TEST_JUDGE_TOKEN", raising=False)
    settings.write(_judge_yaml("http://127.0.0.1:9", extra="    token_env: GITOPS_TEST_JUDGE_TOKEN\n"))
    out = tmp_path / "results.json"
    res = run_gitops("eval", f"{MODEL}@v3", "--out", str(out), *FAST, cwd=eval_repo.root)
    assert res.exit_code == 1 and not out.exists()
    assert "GITOPS_TEST_JUDGE_TOKEN, which is not set" in res.stderr


@pytest.mark.parametrize("extra, key, words", [
    ("    token: abc123\n", "token", "never write a token into gitops.yaml"),
    ("    samples: 0\n", "samples", "eval.judge.samples must be a whole number from 1 to 500"),
    ("    timeout_s: fast\n", "timeout_s", "eval.judge.timeout_s must be a number"),
    ("    token_env: my-token\n", "token_env", "must be the NAME of an environment variable"),
    ("    retries: 3\n", "retries", "unknown key 'retries'"),
])
def test_bad_judge_settings_are_one_sentence_naming_key_and_line(eval_repo, settings, tmp_path,
                                                                 extra, key, words):
    settings.write(_judge_yaml("http://127.0.0.1:9", extra=extra))
    line = settings.path.read_text().splitlines().index(extra.rstrip("\n")) + 1
    out = tmp_path / "results.json"
    res = run_gitops("eval", f"{MODEL}@v3", "--out", str(out), *FAST, cwd=eval_repo.root)
    assert res.exit_code == 1 and not out.exists()
    assert f"gitops.yaml:{line}: " in res.stderr and words in res.stderr and "Traceback" not in res.stderr
    assert key in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "abc123" not in res.stderr


@pytest.mark.parametrize("endpoint, words", [
    ("ftp://judge.example.com", "must be an http:// or https:// URL"),
    ("http://user:pw@judge.example.com",
     "must not carry a password; put secrets in the environment variable named by token_env"),
])
def test_a_bad_judge_endpoint_names_its_line(eval_repo, settings, endpoint, words):
    settings.write(_judge_yaml(endpoint))
    line = settings.path.read_text().splitlines().index(f"    endpoint: {endpoint}") + 1
    res = run_gitops("eval", f"{MODEL}@v3", *FAST, cwd=eval_repo.root)
    assert res.exit_code == 1 and f"gitops.yaml:{line}: eval.judge.endpoint" in res.stderr and words in res.stderr
    assert "pw@" not in res.stderr


def test_no_judge_does_not_read_the_judge_settings(eval_repo, settings):
    settings.write(_judge_yaml("ftp://bad"))
    res = run_gitops("eval", f"{MODEL}@v3", "--no-judge", "--dataset", "nope@v1", *FAST, cwd=eval_repo.root)
    assert res.exit_code == 1 and "gitops.yaml" not in res.stderr and "nope" in res.stderr


@pytest.mark.parametrize("args, words", [
    (["--no-judge", "--judge-model", "x"], "--no-judge excludes"),
    (["--judge-endpoint", "http://127.0.0.1:9"], "--judge-model is needed too"),
    (["--judge-endpoint", "ftp://x", "--judge-model", "m"], "must be an http:// or https:// URL"),
    (["--judge-endpoint", "http://127.0.0.1:9", "--judge-model", "two words"], "without spaces"),
])
def test_judge_options_are_checked(eval_repo, args, words):
    res = run_gitops("eval", f"{MODEL}@v3", *args, *FAST, cwd=eval_repo.root)
    assert res.exit_code == 2 and words in res.stderr


def test_no_baseline_means_no_judge_with_a_note(eval_repo):
    from gitops import api

    ws = api.Workspace(eval_repo.root)
    judge = JudgeConfig(endpoint="http://127.0.0.1:9", model=REF)
    plan = api.plan_eval(ws, f"{MODEL}@v3", baseline=None, judge=judge)
    assert plan.judge is None and any("no judge: there is no baseline" in n for n in plan.notes)
    plan = api.plan_eval(ws, f"{MODEL}@v3", judge=judge)  # against @production
    assert plan.judge == judge and any(n.startswith(f"judge: {REF} at 127.0.0.1:9") for n in plan.notes)


def test_the_report_shows_the_judge_line_and_old_documents_still_load(tmp_path):
    from gitops.report.render import render_report

    doc = json.loads(GOLDEN.read_text())
    assert "judge" not in doc
    plain = EvalResults.from_dict(doc)
    assert plain.judge is None and "judge" not in plain.to_dict()  # written as before the section existed
    doc["judge"] = {"host": "10.0.0.5:8000", "model": "judge@production", "samples": 16, "win_rate": 0.625,
                    "low": 0.48, "high": 0.75, "wins": 9, "losses": 5, "ties": 2, "consistent": 0.8125}
    judged = EvalResults.from_dict(doc)
    assert EvalResults.from_json(judged.to_json()).judge == judged.judge
    text = render_report([judged]).markdown
    assert ("Judge (judge@production at 10.0.0.5:8000): candidate wins 62% [48%, 75%] of 16 samples, both "
            "orders; consistent 81% (9 won, 5 lost, 2 tied)") in text
    metrics_end = text.index("| Size |")
    assert metrics_end < text.index("Judge (") < text.index("### Gates")
    assert "Judge (" not in render_report([plain]).markdown


@pytest.mark.parametrize("change, words", [
    ({"wins": 10}, "must add up to the 16 samples"),
    ({"win_rate": 1.5}, "shares from 0 to 1"),
    ({"low": 0.9}, "low <= high"),
    ({"endpoint": "http://x"}, "not a known key"),
])
def test_a_malformed_judge_section_is_refused(change, words):
    from gitops.eval.results import ResultsError

    doc = json.loads(GOLDEN.read_text())
    doc["judge"] = {"host": "h:1", "model": "m", "samples": 16, "win_rate": 0.5, "low": 0.4, "high": 0.6,
                    "wins": 4, "losses": 4, "ties": 8, "consistent": 0.5, **change}
    with pytest.raises(ResultsError, match=re.escape(words)):
        EvalResults.from_dict(doc)


def test_a_judge_win_rate_gate():
    from gitops.core.schema import Gate
    from gitops.eval.gates import evaluate_gates

    gate = [Gate(metric="judge_win_rate", min=0.5)]
    (won,) = evaluate_gates(gate, {"loss": 1.0, "judge_win_rate": 0.625}, {"loss": 1.1})
    assert won.passed and not won.skipped
    (lost,) = evaluate_gates(gate, {"loss": 1.0, "judge_win_rate": 0.25}, {"loss": 1.1})
    assert not lost.passed
    (alone,) = evaluate_gates(gate, {"loss": 1.0}, None)  # no baseline: nothing to judge, like a relative bound
    assert alone.skipped and alone.passed and "no baseline for the judge" in alone.message
    (unjudged,) = evaluate_gates(gate, {"loss": 1.0}, {"loss": 1.1})  # a baseline, but no judge ran
    assert not unjudged.passed and "configure eval.judge" in unjudged.message


@contextmanager
def _token_judge(token: str):
    """A real HTTP server on 127.0.0.1 that lists one model to a request bearing ``token`` and answers
    401 to any other; it records the Authorization headers it saw."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API names it
            seen.append(self.headers.get("Authorization"))
            ok = self.headers.get("Authorization") == f"Bearer {token}"
            body = json.dumps({"data": [{"id": "judge"}]} if ok else {"error": "no"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_named_by_token_env_is_sent_as_a_bearer_token(monkeypatch):
    from gitops.errors import EvalError
    from gitops.eval.judge import check

    with _token_judge("s3cret") as (url, seen):
        config = JudgeConfig(endpoint=url, model="judge", token_env="GITOPS_TEST_JUDGE_TOKEN")
        monkeypatch.setenv("GITOPS_TEST_JUDGE_TOKEN", "s3cret")
        check(config)
        monkeypatch.setenv("GITOPS_TEST_JUDGE_TOKEN", "wrong")
        with pytest.raises(EvalError, match=r"refused the request \(HTTP 401\); check the token") as err:
            check(config)
        assert "wrong" not in str(err.value)
    assert seen == ["Bearer s3cret", "Bearer wrong"]


def test_a_classification_model_is_not_judged(ratings_repo, weights):
    """Labels score a classification model; its free-text outputs are not sent to a judge."""
    from gitops import api
    from tests.prompt_fixtures import DATA
    from tests.prompt_fixtures import MODEL as RATINGS

    for _ in range(2):
        res = run_gitops("register", RATINGS, str(weights()), "--dataset", f"{DATA}@v1", cwd=ratings_repo)
        assert res.exit_code == 0, res.stderr
    ws = api.Workspace(ratings_repo)
    api.set_alias(ws, RATINGS, "production", "v1")
    judge = JudgeConfig(endpoint="http://127.0.0.1:9", model=REF)
    plan = api.plan_eval(api.Workspace(ratings_repo), f"{RATINGS}@v2", judge=judge)
    assert plan.baseline.label == f"{RATINGS}@production"  # a baseline, and still no judge
    assert plan.judge is None and any("classification model" in n for n in plan.notes)
