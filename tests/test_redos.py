"""Catastrophic regexes cannot freeze anything (issue 17, hole 3).

``extract:`` rules of a classification task and CODEOWNERS patterns come from files a pull
request edits. On Python's backtracking ``re``, ``(\\w+\\s?)+\\d`` or ``^(.|.)*q$`` were accepted
by ``model create`` and ``check`` and froze ``gitops serve`` (``/healthz`` included) for minutes on
one ordinary completion; ``^(\\w+\\s?)*$`` cost 12.9 s on a six-word output. Now every such pattern
runs on RE2 (:mod:`gitops.saferegex`), linear in the text, and the constructs that need
backtracking are refused with one sentence when the file is checked.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from gitops.core.task import Rule
from gitops.registry.codeowners_rules import parse as parse_codeowners
from gitops.saferegex import check_pattern
from tests.conftest import git_state, run_gitops
from tests.test_serve_cli import Server, free_port

HOSTILE_RULES = [r"(\w+\s?)+\d", r"^(.|.)*q$", r"^(\w+\s?)*$", r"(a|aa)+$", r"(.*a){12}", r"^(a+)+$"]
HOSTILE_TEXTS = ["word " * 6 + "!", "a" * 5_000 + "!", "The chocolate tour was excellent, " * 300]
TASK = """\
input: "{{text}}"
label: rating
labels: ["1", "2", "3", "4", "5"]
fallback: "3"
extract:
  "1": {{regex: {rule}}}
"""


@pytest.mark.parametrize("rule", HOSTILE_RULES)
def test_hostile_rules_run_in_linear_time(rule: str) -> None:
    start = time.monotonic()
    for text in HOSTILE_TEXTS:
        Rule("regex", rule).matches(text)
    assert time.monotonic() - start < 0.5  # Python's re: 12.9 s for the first text, forever for the others


def test_rules_still_match_as_before() -> None:
    """Case-insensitive search, as the rules always ran; lone surrogates do not crash a match."""
    assert Rule("regex", r"\b(five|5)\b").matches("I give it FIVE stars")
    assert not Rule("regex", r"\b(five|5)\b").matches("fivefold")
    assert Rule("regex", r"^\s*[45]").matches("  4 stars")
    assert Rule("regex", r"stars").matches("lone \ud800 surrogate, five stars")
    assert Rule("word", "4").matches("I'd say 4.") and not Rule("word", "4").matches("14")


@pytest.mark.parametrize("pattern, words", [
    (r"(?<!\w)5", "a lookbehind '(?<!'"), (r"5(?=\s)", "a lookahead '(?='"), (r"(\w)\1", "a backreference '\\1'"),
    (r"(?P<d>5)(?P=d)", "a backreference '(?P='"), (r"(?>5+)", "an atomic group"), (r"5*+", "a possessive"),
    (r"(a)?(?(1)b|c)", "a conditional group"), (r"5\Z", "write '\\z'"), (r"(?x) 5", "the inline flag '(?x'"),
    (r"(5", "does not compile"), (r"a{1001}", "too large"),
])
def test_constructs_re2_lacks_are_named(pattern: str, words: str) -> None:
    assert words in (check_pattern(pattern) or ""), check_pattern(pattern)


def test_model_create_and_check_refuse_a_backtracking_rule_in_one_sentence(gitops_repo: Path,
                                                                            tmp_path: Path) -> None:
    block = tmp_path / "task.yaml"
    block.write_text(TASK.format(rule=json.dumps(r"(?<!\w)1(?!\w)")))
    before = git_state(gitops_repo)
    res = run_gitops("model", "create", "ratings", "--task", "classification", "--classification", str(block),
                     cwd=gitops_repo)
    assert res.exit_code == 1 and "uses a lookbehind '(?<!', which needs backtracking" in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert git_state(gitops_repo) == before and not (gitops_repo / "registry" / "ratings").exists()

    block.write_text(TASK.format(rule=json.dumps(r"(\w+\s?)+\d")))  # catastrophic for re, linear on RE2
    res = run_gitops("model", "create", "ratings", "--task", "classification", "--classification", str(block),
                     cwd=gitops_repo)
    assert res.exit_code == 0, res.stderr
    path = gitops_repo / "registry" / "ratings" / "model.yaml"
    text = path.read_text()
    path.write_text(text.replace(r"(\w+\s?)+\d", r"(\w+)\s\1"))  # a hand edit: a backreference
    res = run_gitops("check", cwd=gitops_repo)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if r"\1" in t)
    assert res.exit_code == 1 and (f"registry/ratings/model.yaml:{line}: classification.extract.1" in res.stderr
                                   or f"registry/ratings/model.yaml:{line - 1}: classification.extract.1"
                                   in res.stderr), res.stderr  # the rule's line, or its label's
    assert "a backreference '\\1'" in res.stderr and "Traceback" not in res.stderr


def test_codeowners_and_admin_path_globs_match_in_linear_time() -> None:
    """A glob from CODEOWNERS (or gitops.yaml's admin_paths) becomes a regex: ``*a*a*...*b`` took
    6 s for a 40-character path on Python's re, and a PR chooses both."""
    co = parse_codeowners("* @a\n" + "*a" * 40 + "*b @evil\n/registry/ @admins\n")
    start = time.monotonic()
    assert co.owners_of("a" * 4000) == ["@a"] and co.owners_of("a" * 40 + "b") == ["@evil"]
    assert co.owners_of("registry/m/aliases/production.yaml") == ["@admins"]
    assert time.monotonic() - start < 0.5


@pytest.fixture(scope="module")
def redos_repo(tmp_path_factory, base_model_dir: Path) -> Path:
    """A classification model whose rule for label 1 is ``(?s)^(.|.|.)*q$`` (on ``re``: 3^n steps for an
    output of n characters that does not end in q), with a zero-shot prompt version on the toy
    base as its production (the text goes to the model as it is)."""
    from tests.hostile_fixtures import isolated

    base = tmp_path_factory.mktemp("redos")
    repo = base / "repo"
    with isolated(base / "home"):
        assert run_gitops("init", str(repo), "--remote", str(base / "dvc-remote")).exit_code == 0
        block = base / "task.yaml"
        block.write_text(TASK.format(rule=json.dumps(r"(?s)^(.|.|.)*q$")))
        prompt = base / "prompt.yaml"
        prompt.write_text(json.dumps({"base": "toybase@v1", "task": "Rate the review from 1 to 5.",
                                      "template": "{sample}", "generation": {"max_new_tokens": 48}}))
        for args in (("model", "create", "toybase"), ("register", "toybase", str(base_model_dir), "--format", "hf"),
                     ("model", "create", "ratings", "--task", "classification", "--classification", str(block)),
                     ("prompt", "add", "ratings", "--config", str(prompt)),
                     ("alias", "set", "ratings", "production", "v1")):
            res = run_gitops(*args, cwd=repo)
            assert res.exit_code == 0, (args, res.stderr)
    return repo


def test_a_redos_rule_cannot_stall_the_server(redos_repo: Path) -> None:
    server = Server(redos_repo, free_port(), secret=None, ref="ratings@production")
    try:
        server.wait_ready("ratings@v1")
        answers: list[dict] = []

        def complete() -> None:  # the toy's greedy answer: '. It is fine for now.', 3^21 steps for re
            body = {"model": "ratings", "prompt": "The chocolate tour was excellent and the guide", "temperature": 0}
            answers.append(httpx.post(server.url + "/v1/completions", json=body, timeout=60).json())

        asker = threading.Thread(target=complete)
        waits = []
        asker.start()
        while asker.is_alive() or len(waits) < 5:
            t0 = time.monotonic()
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            waits.append(time.monotonic() - t0)
            time.sleep(0.02)
        asker.join()
        output = answers[0]["choices"][0]["text"]
        assert len(output) >= 18 and not output.rstrip().endswith("q"), output  # hours for re, then
        assert answers[0]["choices"][0]["classification"]["label"] != "1"
        print(f"/healthz: {len(waits)} polls while the rule read {output!r}, the slowest {max(waits):.3f} s")
        assert max(waits) < 1.0, sorted(waits)[-3:]
    finally:
        server.stop()
        assert "Traceback" not in server.logs()
