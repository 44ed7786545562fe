"""Keep issue 17 closed: the CLI fuzz of tests/test_fuzz_cli.py, grown to the newer verbs.

The same harness and invariants (no traceback, no hang, bounded memory, a failure changes nothing;
see tests/test_fuzz_cli.py) over what came since: prompt configs (``prompt add``, its ``--note``),
classification blocks (``model create --task classification``, with catastrophic and
backtracking regexes among the rules), ``predict`` and ``compare`` arguments, ``judge`` results
files and endpoints, and ``serve`` options. Two more checks here: nothing is left beside the
repository by a failing command (``--out`` files, rejects, state directories), and ``serve`` is
never allowed to start: every case carries at least one option its validation must refuse (a
wrong accept would start a server, which the case deadline catches as a hang).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import strategies as st

from tests.hostile_fixtures import DATASET, MODEL, copy_repo, isolated
from tests.test_fuzz_cli import (
    CASES,
    HOSTILE,
    NUMBERS,
    Harness,
    _argv,
    _fuzz,
    _mutate_structure,
    _mutate_text,
    any_text,
    names,
    refs,
    template,  # noqa: F401 - the prepared repository, shared fixture
    templates,
    values,
)

GOLDEN = Path(__file__).parent / "golden" / "results-v3.json"
VERB_CASES = {"prompt": 120, "classification": 120, "predict": 60, "compare": 40, "judge": 60, "serve": 100}
assert sum(CASES.values()) + sum(VERB_CASES.values()) >= 1500


@pytest.fixture(scope="module")
def harness(template: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    work = tmp_path_factory.mktemp("fuzz-verbs")
    root = copy_repo(template, work / "repo")
    with isolated(work / "home"), pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield Harness(root, work)


def _listing(out: Path) -> set[str]:
    """Every path beside the repository (the repository and the fixture's HOME excluded)."""
    found = set()
    for top, dirs, files in os.walk(out):
        if Path(top) == out:
            dirs[:] = [d for d in dirs if d not in ("repo", "home")]
        found.update(os.path.relpath(os.path.join(top, n), out) for n in (*dirs, *files))
    return found


def _case(harness: Harness, kind: str, args: list[str], files: dict[str, str | bytes] | None = None, *,
          usage_ok: bool = True, must_fail: bool = False) -> Any:
    """:meth:`Harness.case`, and nothing new beside the repository after a failure (a succeeding
    command may write what it was asked to; it is removed before the next case)."""
    before = _listing(harness.out)
    written = {target.split(":", 1)[1] for target in files or {} if target.startswith("out:")}
    result = harness.case(kind, args, files, usage_ok=usage_ok, must_fail=must_fail)
    left = _listing(harness.out) - before - written
    if result.exit_code != 0:
        assert not left, f"{args[:3]}: a failure left {sorted(left)[:5]} beside the repository"
    for rel in sorted(left, reverse=True):  # what a success wrote (predictions, a report): gone again
        path = harness.out / rel
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    assert not (harness.root / ".git" / "gitops" / "serve").exists(), "a serve case made its state directory"
    return result


# --- prompt configs ------------------------------------------------------------------------------

PROMPT = {"base": f"{MODEL}@v1", "task": "Continue the review.", "template": "{task}\n{sample}",
          "generation": {"max_new_tokens": 4, "temperature": 0}}
FEW_SHOT = {**PROMPT, "dataset": f"{DATASET}@v1", "template": "{task}\n{context}{sample}",
            "example": "Review: {text}\n\n", "retrieval": {"type": "bm25", "k": 2}}


def _dump(doc: Any) -> str:
    """YAML of ``doc``; what YAML cannot carry (a lone surrogate) goes in as the text a careless
    writer would leave (the writer the fuzz stands for is not PyYAML)."""
    try:
        return yaml.dump(doc, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False, width=10**6)
    except (yaml.YAMLError, UnicodeError):  # JSON is YAML: "\\udcff" escapes decode to lone surrogates
        return json.dumps(doc, default=str)


def _mutate(data: st.DataObject, text: str, hows: list[str]) -> str:
    """``text`` as is, with its structure changed, or with its text changed (one of ``hows``)."""
    how = data.draw(st.sampled_from(hows), label="mutation")
    if how == "structure":
        try:
            return _mutate_structure(data, text)
        except yaml.YAMLError:  # the fuzz's own loader refuses it (an escaped lone surrogate): as text
            how = "text"
    return _mutate_text(data, text) if how == "text" else text


def _prompt_config(data: st.DataObject) -> str:
    doc = json.loads(json.dumps(data.draw(st.sampled_from([PROMPT, FEW_SHOT]), label="prompt")))
    for key in data.draw(st.lists(st.sampled_from(["base", "dataset", "template", "example", "task"]), max_size=2,
                                  unique=True), label="fields"):
        doc[key] = data.draw(st.one_of(templates, refs, any_text, values), label=key)
    return _mutate(data, _dump(doc), ["as is", "structure", "text"])


def test_fuzz_prompt_add(harness: Harness) -> None:
    _fuzz(harness, "prompt", VERB_CASES["prompt"], _prompt_case)


def _prompt_case(harness: Harness, data: st.DataObject) -> None:
    args = ["prompt", "add", _argv(data.draw(st.one_of(st.just(MODEL), names), label="model")),
            "--config", str(harness.out / "p.yaml")]
    if data.draw(st.booleans(), label="--note"):
        args += ["--note", _argv(data.draw(any_text, label="note"))]
    _case(harness, "prompt", args, {"out:p.yaml": _prompt_config(data)})


# --- classification blocks -----------------------------------------------------------------------

RULES = [r"\b(five|5)\b", r"^\s*[45]", "one", r"(\w+\s?)+\d", r"^(.|.)*q$", r"(?s)^(.|.|.)*q$", r"^(a+)+$",
         r"(?<!\w)5", r"5(?=\s)", r"(\w)\1", r"(?>5)", r"5*+", r"(?(1)a|b)", r"\Z", r"(?x) 5", "(5", "[", "a{1001}",
         "(" * 300 + ")" * 300, "x" * 1001, "", "\\", r"\pL+", r"[[:alpha:]]", r"(?i)FIVE", "\ud800"]
BLOCK = {"input": "Review: {text}", "label": "rating", "labels": ["1", "2", "3", "4", "5"], "fallback": "3",
         "extract": {"5": {"regex": r"\b(five|5)\b"}, "1": {"exact": "one"}}}


REFUSED_RULES = {r"(?<!\w)5", r"5(?=\s)", r"(\w)\1", r"(?>5)", r"5*+", r"(?(1)a|b)", r"\Z", r"(?x) 5", "(5", "[",
                 "a{1001}", "x" * 1001, "", "\\"}


def _block(data: st.DataObject) -> tuple[str, bool]:
    """A classification block, and whether it must be refused (it holds a rule that needs
    backtracking, does not compile or is not a rule at all, written as is)."""
    doc = json.loads(json.dumps(BLOCK))
    refuse = False
    for label in data.draw(st.lists(st.sampled_from(["1", "2", "3", "4", "5", "9"]), max_size=3, unique=True),
                           label="rules"):
        kind = data.draw(st.sampled_from(["regex"] * 4 + ["exact", "fuzzy"]), label="kind")
        rule = data.draw(st.one_of(*[st.sampled_from(RULES)] * 3, any_text), label="rule")
        doc["extract"][label] = {kind: rule}
        refuse |= label == "9" or kind == "fuzzy" or (kind == "regex" and rule in REFUSED_RULES) or rule == ""
    if data.draw(st.integers(0, 3), label="input") == 0:
        doc["input"] = data.draw(templates, label="template")
    text = _dump(doc)
    mutated = _mutate(data, text, ["as is", "as is", "structure", "text"])
    return mutated, refuse and mutated == text


def test_fuzz_model_create_classification(harness: Harness) -> None:
    """Each rule that must be refused once in an otherwise valid block (a wrong accept is certain
    to show), then the fuzz."""
    args = ["model", "create", "rated", "--task", "classification", "--classification", str(harness.out / "task.yaml")]
    for rule in sorted(REFUSED_RULES):
        block = {**BLOCK, "extract": {"5": {"regex": rule}}}
        _case(harness, "classification", args, {"out:task.yaml": _dump(block)}, must_fail=True)
    _fuzz(harness, "classification", VERB_CASES["classification"] - len(REFUSED_RULES), _classification_case)
    assert harness.runs["classification"] >= VERB_CASES["classification"]


def _classification_case(harness: Harness, data: st.DataObject) -> None:
    name = _argv(data.draw(st.sampled_from(["rated"] * 4 + [MODEL, "x" * 65, "Rated", "\ud800"]), label="name"))
    task = data.draw(st.sampled_from(["classification"] * 6 + ["completion", "x"]), label="task")
    args = ["model", "create", name, "--task", task,
            "--classification", str(harness.out / "task.yaml")]
    block, refuse = _block(data)
    _case(harness, "classification", args, {"out:task.yaml": block}, must_fail=refuse)


# --- predict and compare -------------------------------------------------------------------------

OUT_NAMES = ["p.jsonl", "p.csv", "p.parquet", "p.txt", "p", "dir/p.jsonl", ".hidden.jsonl", "p.jsonl.partial.jsonl"]
INTS = st.one_of(st.integers(-5, 100), st.sampled_from([0, -1, 2**31, 10**30]), st.sampled_from(["x", "1e3", ""]))


def _options(data: st.DataObject, choices: dict[str, st.SearchStrategy], most: int = 3) -> list[str]:
    out: list[str] = []
    for flag in data.draw(st.lists(st.sampled_from(list(choices)), max_size=most, unique=True), label="options"):
        value = data.draw(choices[flag], label=flag)
        out += [flag] if value is None else [flag, _argv(str(value))]
    return out


PREDICT_OPTIONS = {"--split": st.sampled_from(["test", "train", "all", "nope", ""]), "--batch-size": INTS,
                   "--limit": INTS, "--device": st.one_of(st.sampled_from(["cpu", "cuda", "tpu", ""]), any_text),
                   "--threads": INTS, "--constrain": st.sampled_from(["labels", "none", "all"])}


def test_fuzz_predict(harness: Harness) -> None:
    _fuzz(harness, "predict", VERB_CASES["predict"], _predict_case)


def _predict_case(harness: Harness, data: st.DataObject) -> None:
    ref = _argv(data.draw(st.one_of(st.sampled_from([f"{MODEL}@v1", f"{MODEL}@staging", "rated@v1"]), refs),
                          label="ref"))
    dataset = _argv(data.draw(st.one_of(st.sampled_from([f"{DATASET}@v1", f"{DATASET}@latest"]), refs),
                              label="dataset"))
    out = str(harness.out / data.draw(st.sampled_from(OUT_NAMES), label="out"))
    args = ["predict", ref, "--dataset", dataset, "--out", out, *_options(data, PREDICT_OPTIONS, most=2)]
    _case(harness, "predict", args, must_fail=True)  # the repository holds no classification model


def test_fuzz_compare(harness: Harness) -> None:
    _fuzz(harness, "compare", VERB_CASES["compare"], _compare_case)


def _compare_case(harness: Harness, data: st.DataObject) -> None:
    variants = [_argv(r) for r in data.draw(st.lists(st.one_of(refs, st.just(f"{MODEL}@v1")), min_size=1, max_size=3))]
    options = dict(PREDICT_OPTIONS, **{"--dataset": st.one_of(refs, st.just(f"{DATASET}@v1")), "--json": st.none()})
    _case(harness, "compare", ["compare", *variants, *_options(data, options)], must_fail=True)


# --- judge ---------------------------------------------------------------------------------------

ENDPOINTS = ["http://127.0.0.1:9", "http://127.0.0.1:9/", "https://127.0.0.1:9", "http://[::1]:9", "http://[::1",
             "http://[::1]:99999", "ftp://127.0.0.1", "http://", "127.0.0.1:9", "http://u:pw@127.0.0.1:9", "",
             "http://127.0.0.1:9/" + "x" * 3000, "http://127.0.0.1:notaport", "http://127.0.0.1:9\n", "\ud800"]


def _results(data: st.DataObject) -> str:
    text = GOLDEN.read_text(encoding="utf-8")
    how = data.draw(st.sampled_from(["as is", "structure", "text", "sample"]), label="mutation")
    if how in ("structure", "text"):  # structure writes YAML: a JSON reader must refuse it cleanly
        return _mutate(data, text, [how])
    if how == "sample":
        doc = json.loads(text)
        field = data.draw(st.sampled_from(["prompt", "candidate", "baseline"]), label="field")
        doc["samples"][0][field] = data.draw(st.one_of(any_text, values), label="value")
        try:
            return json.dumps(doc, ensure_ascii=data.draw(st.booleans()))
        except (TypeError, ValueError):
            return text
    return text


def test_fuzz_judge(harness: Harness) -> None:
    _fuzz(harness, "judge", VERB_CASES["judge"], _judge_case)


def _judge_case(harness: Harness, data: st.DataObject) -> None:
    endpoint = data.draw(st.one_of(st.just(ENDPOINTS[0]), st.just(ENDPOINTS[0]), st.just(ENDPOINTS[0]),
                                   st.sampled_from(ENDPOINTS), st.sampled_from(HOSTILE[:40])), label="endpoint")
    model = data.draw(st.one_of(st.just("judge@production"), st.just("judge@production"), names), label="model")
    args = ["judge", str(harness.out / "r.json"), "--endpoint", _argv(endpoint), "--model", _argv(model)]
    if data.draw(st.booleans(), label="--json"):
        args.append("--json")
    result = _case(harness, "judge", args, {"out:r.json": _results(data)}, must_fail=True)
    assert "pw" not in result.stderr  # a password in the URL is never echoed


# --- serve options (validation only: never a server) ---------------------------------------------

REFUSED = [("--port", "0"), ("--port", "70000"), ("--port", "-1"), ("--port", "x"), ("--engine", "vllm"),
           ("--device", "tpu"), ("--device", ""), ("--device", "cuda:0"), ("--threads", "0"), ("--threads", "5000"),
           ("--max-connections", "0"), ("--max-connections", "1000001"), ("--head-timeout", "0"),
           ("--head-timeout", "nan"), ("--head-timeout", "-1"), ("--body-timeout", "inf"),
           ("--body-timeout", "1e400"), ("--hook-wait", "0"), ("--hook-wait", "301")]
SERVE_OPTIONS = {"--port": st.one_of(st.integers(1, 65535).map(str), st.sampled_from([str(n) for n in NUMBERS])),
                 "--engine": st.sampled_from(["auto", "ct2", "hf"]),
                 "--poll": st.sampled_from(["0.5", "10", "86401", "nan", "x"]), "--follow": st.none(),
                 "--secret-env": st.one_of(st.sampled_from(["GITOPS_DEPLOY_SECRET", "", "A=B", "PATH"]), any_text),
                 "--branch": st.one_of(st.sampled_from(["main", "nope", "-x"]), names),
                 "--state-dir": st.sampled_from(["st", "st/sub", "/proc/x", "repo/.git", ".", "x" * 300]),
                 "--threads": INTS, "--device": st.sampled_from(["cpu", "cuda"]),
                 "--max-connections": INTS, "--head-timeout": st.sampled_from(["0.5", "10", "3600", "3601"]),
                 "--body-timeout": st.sampled_from(["1", "30", "1e9"]), "--hook-wait": st.sampled_from(["8", "300"])}


def test_fuzz_serve_options(harness: Harness) -> None:
    _fuzz(harness, "serve", VERB_CASES["serve"], _serve_case)


BAD_REFS = ["nope@staging", f"{MODEL}@production", f"{MODEL}@nope", MODEL, "@", f"{MODEL}@staging\n", "x" * 300]


def _serve_case(harness: Harness, data: st.DataObject) -> None:
    """Valid and invalid options around one thing ``prepare`` must refuse: a bad option, a
    reference the registry does not serve, a branch that does not exist or an unusable state
    directory (the last check before a server would listen)."""
    rng = data.draw(st.randoms(), label="refused")
    refused = rng.choice(["option"] * 3 + ["ref", "branch", "state-dir"])
    ref = rng.choice(BAD_REFS) if refused == "ref" else _argv(data.draw(st.one_of(st.just(f"{MODEL}@staging"), refs)))
    args = ["serve", ref, *_options(data, SERVE_OPTIONS)]
    if refused == "option":
        args += list(rng.choice(REFUSED))  # last: it wins over a valid value of the same option drawn above
    elif refused == "branch":
        args += ["--branch", "no-such-branch"]
    elif refused == "state-dir":
        args += ["--state-dir", rng.choice(["/proc/gitops-fuzz", "/dev/null/x", str(harness.root / "gitops.yaml")])]
    elif not any(r in ref for r in BAD_REFS):  # a fuzzed reference that might name something served
        args += list(rng.choice(REFUSED))
    args = [str(harness.out / a) if prev == "--state-dir" else a for prev, a in zip(["", *args], args)]
    _case(harness, "serve", args, must_fail=True)
