"""Every hole of issue 9's red team (items 6, 8, 9, 10), closed and kept closed through the real CLI.

Each case writes one piece of bad input into a copy of a prepared repository (or beside it), runs
one command, and expects what STYLE.md promises for bad input: exit 1, one sentence starting
``Error:`` that names the file/key/line, no traceback, a bounded message, and the repository as it
was (HEAD and ``git status``), with no training work dir and nothing written outside the repository.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import git_state, run_gitops
from tests.hostile_fixtures import DATASET, MODEL, copy_repo, isolated, make_hostile_repo, train_config

MAX_ERROR_CHARS = 2000  # a whole error, every problem included; a 100 KB value must never be echoed
DEADLINE_S = 60  # a hang guard, not a speed test: billion laughs once took minutes

BILLION_LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                           + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]"
                              for i in range(8)]) + "\n"
HUGE = "x" * 100_000
MODEL_YAML = f"registry/{MODEL}/model.yaml"
DATASET_YAML = f"registry/datasets/{DATASET}.yaml"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    with isolated(base / "home"):
        return make_hostile_repo(base)


@pytest.fixture
def repo(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return copy_repo(template, tmp_path / "work" / "repo")


@dataclass
class Case:
    """One bad input: files to write (``repo:``/``out:`` prefixed paths), the command, what the error names."""

    args: list[str]
    needles: tuple[str, ...]
    files: dict[str, str | Callable[[Path], str]] = field(default_factory=dict)


def _edit(rel: str, change: Callable[[str], str]) -> Callable[[Path], str]:
    return lambda root: change((root / rel).read_text(encoding="utf-8"))


def _config(**sections: dict) -> str:
    return yaml.safe_dump(train_config(**sections))


def _with_metric(value: str) -> Callable[[Path], str]:
    return _edit(MODEL_YAML, lambda t: t.replace("    format: hf", f"    metrics: {{loss: {value}}}\n    format: hf"))


def _hook(url: str = "https://deploy.example.com/hook", payload: str = "") -> Callable[[Path], str]:
    hook = f'deploy:\n  hooks:\n    - name: prod\n      url: "{url}"\n{payload}'
    return _edit("gitops.yaml", lambda t: t.replace("deploy:\n  hooks: []\n", hook))


def _results(change: Callable[[str], str]) -> Callable[[Path], str]:
    golden = Path(__file__).parent / "golden" / "results-v3.json"
    return lambda _root: change(golden.read_text(encoding="utf-8"))


ROW = '{"id": "n1", "text": "new review", "rating": 3}'
INGEST = ["ingest", "{out}/in.jsonl", "--dataset", DATASET]
INGEST_CSV = ["ingest", "{out}/in.csv", "--dataset", DATASET]
TRAIN = ["train", "{out}/train.yaml"]

CASES: dict[str, Case] = {
    # --- item 8: tracebacks --------------------------------------------------------------------
    "csv 5,000-digit number": Case(INGEST_CSV, ("in.csv:2", "rating"),
                                   {"out:in.csv": "id,text,rating\nn1,hello," + "7" * 5000 + "\n"}),
    "jsonl 5,000-digit number": Case(INGEST, ("in.jsonl:1", "digits"),
                                     {"out:in.jsonl": '{"id": "n1", "text": "hi", "rating": ' + "7" * 5000 + "}\n"}),
    "jsonl lone surrogate": Case(INGEST, ("in.jsonl:1", "surrogate"),
                                 {"out:in.jsonl": '{"id": "n1", "text": "bad \\ud800 text", "rating": 1}\n'}),
    "jsonl 100,000-deep nesting": Case(INGEST, ("in.jsonl:2", "nested deeper"),
                                      {"out:in.jsonl": ROW + "\n" + "[" * 100_000 + "]" * 100_000 + "\n"}),
    "input file name too long for the file system": Case(["ingest", "x" * 5000, "--dataset", DATASET],
                                                         ("xxxx", "cannot read it"), {}),
    "jsonl 400-digit number": Case(INGEST, ("in.jsonl:1", "400 digits"),
                                   {"out:in.jsonl": ROW.replace("3", "9" * 400) + "\n"}),
    "jsonl int beyond int64 in an int column": Case(INGEST, ("in.jsonl:1", "rating", "int64"),
                                                    {"out:in.jsonl": ROW.replace("3", "9" * 25) + "\n"}),
    "csv int beyond int64 in an int column": Case(INGEST_CSV, ("in.csv:2", "rating", "int64"),
                                                  {"out:in.csv": "id,text,rating\nn1,hi,-" + "9" * 19 + "\n"}),
    "400-digit metric in model.yaml (show)": Case(["show"], (MODEL_YAML, "metrics"),
                                                  {f"repo:{MODEL_YAML}": _with_metric("9" * 400)}),
    "400-digit metric in model.yaml (show MODEL)": Case(["show", MODEL], (MODEL_YAML, "metrics"),
                                                        {f"repo:{MODEL_YAML}": _with_metric("9" * 400)}),
    "400-digit gate bound (check)": Case(["check"], (MODEL_YAML, "max"), {f"repo:{MODEL_YAML}": _edit(
        MODEL_YAML, lambda t: t.replace("versions:", f"gates:\n- metric: loss\n  max: {'9' * 400}\nversions:"))}),
    "unclosed IPv6 hook url (check)": Case(["check"], ("gitops.yaml", "deploy.hooks[0].url"),
                                           {"repo:gitops.yaml": _hook("http://[::1")}),
    "unclosed IPv6 hook url (deploy --dry-run)": Case(["deploy", "--base", "HEAD~1", "--head", "HEAD", "--dry-run"],
                                                      ("gitops.yaml", "deploy.hooks[0].url"),
                                                      {"repo:gitops.yaml": _hook("http://[::1")}),
    "template conversion {text!z}": Case(TRAIN, ("train.yaml", "prompt.template"),
                                         {"out:train.yaml": _config(prompt={"template": "{text!z}"})}),
    "template format spec {text:d}": Case(TRAIN, ("train.yaml", "prompt.template"),
                                          {"out:train.yaml": _config(prompt={"template": "{text:d}"})}),
    "400-digit alpha": Case(TRAIN, ("train.yaml", "adapter.alpha"),
                            {"out:train.yaml": _config(adapter={"alpha": int("9" * 400)})}),
    "400-digit learning rate": Case(TRAIN, ("train.yaml", "trainer.learning_rate"),
                                    {"out:train.yaml": _config(trainer={"learning_rate": int("9" * 400)})}),
    "400-digit learning rate via --set": Case([*TRAIN, "--set", "trainer.learning_rate=" + "9" * 400],
                                              ("trainer.learning_rate",), {"out:train.yaml": _config()}),
    "30-digit LoRA r": Case(TRAIN, ("train.yaml", "adapter.r"),
                            {"out:train.yaml": _config(adapter={"r": int("9" * 30)})}),
    "seed numpy cannot take": Case(TRAIN, ("train.yaml", "trainer.seed"),
                                   {"out:train.yaml": _config(trainer={"seed": -1})}),
    "100,000-character model name": Case(TRAIN, ("train.yaml", "output.model"),
                                         {"out:train.yaml": _config(output={"model": HUGE})}),
    "metrics JSON 5,000-digit number": Case(["register", MODEL, "{out}/w", "--metrics", "{out}/m.json"],
                                            ("m.json", "digits"),
                                            {"out:m.json": '{"loss": ' + "1" * 5000 + "}", "out:w/a.bin": "x"}),
    "results JSON 100,000-deep": Case(["report", "{out}/r.json"], ("r.json", "nested deeper"),
                                      {"out:r.json": "[" * 100_000 + "]" * 100_000}),
    # --- item 9: resource bombs ----------------------------------------------------------------
    "billion laughs in an alias file": Case(["check"], ("aliases/staging.yaml:1", "anchors"),
                                            {f"repo:registry/{MODEL}/aliases/staging.yaml": BILLION_LAUGHS}),
    "billion laughs in model.yaml": Case(["show"], (MODEL_YAML + ":1", "anchors"),
                                         {f"repo:{MODEL_YAML}": BILLION_LAUGHS}),
    "billion laughs in a data set file": Case(["dataset", "show", DATASET], (DATASET_YAML + ":1", "anchors"),
                                              {f"repo:{DATASET_YAML}": BILLION_LAUGHS}),
    "billion laughs in gitops.yaml (check)": Case(["check"], ("gitops.yaml:1", "anchors"),
                                                  {"repo:gitops.yaml": BILLION_LAUGHS}),
    "billion laughs in gitops.yaml (deploy)": Case(["deploy", "--base", "HEAD~1", "--head", "HEAD", "--dry-run"],
                                                   ("gitops.yaml:1", "anchors"), {"repo:gitops.yaml": BILLION_LAUGHS}),
    "billion laughs in a train config": Case(TRAIN, ("train.yaml:1", "anchors"),
                                             {"out:train.yaml": BILLION_LAUGHS}),
    "billion laughs in a DVC pointer": Case(["check"], (f"models/{MODEL}/v1.dvc", "anchors"),
                                            {f"repo:models/{MODEL}/v1.dvc": BILLION_LAUGHS}),
    "billion laughs in --set": Case([*TRAIN, "--set", "adapter.target_modules=" + BILLION_LAUGHS.replace("\n", " ")],
                                    ("anchors",), {"out:train.yaml": _config()}),
    "billion laughs in a metrics file": Case(["register", MODEL, "{out}/w", "--metrics", "{out}/m.yaml"],
                                             ("m.yaml:1", "anchors"), {"out:m.yaml": BILLION_LAUGHS, "out:w/a": "x"}),
    "template width {text:>200000000}": Case(TRAIN, ("train.yaml", "prompt.template"),
                                             {"out:train.yaml": _config(prompt={"template": "{text:>200000000}"})}),
    "payload width {model:>200000000}": Case(["check"], ("gitops.yaml", "payload"), {"repo:gitops.yaml": _hook(
        payload='      payload: {model: "{model:>200000000}"}\n')}),
    "payload conversion {model!r}": Case(["check"], ("gitops.yaml", "payload"), {"repo:gitops.yaml": _hook(
        payload='      payload: {model: "x {model!r}"}\n')}),
    "100 KB alias name": Case(["alias", "set", MODEL, HUGE, "v1"], ("alias",)),
    "100 KB model reference": Case(["show", HUGE], ("model name",)),
    "100 KB unknown key in model.yaml": Case(["check"], (MODEL_YAML + ":", "unknown key"), {
        f"repo:{MODEL_YAML}": _edit(MODEL_YAML, lambda t: f"? {HUGE}\n: 1\n" + t)}),
    "100 KB value of the wrong type in a CSV": Case(INGEST_CSV, ("in.csv:2",),
                                                    {"out:in.csv": f"id,text,rating\nn1,hello,{HUGE}\n"}),
    "100 KB hook url": Case(["check"], ("gitops.yaml", "url"), {"repo:gitops.yaml": _hook("ftp://" + HUGE)}),
    "100 KB train config key": Case(TRAIN, ("train.yaml", "unknown key"),
                                    {"out:train.yaml": _config() + f"? {HUGE}\n: 1\n"}),
    "100 KB base_model": Case(TRAIN, ("train.yaml", "base_model"),
                              {"out:train.yaml": _config(base_model=HUGE)}),
    # --- item 10: accepted but wrong ---------------------------------------------------------------
    "csv duplicated text header": Case(INGEST_CSV, ("in.csv:1", "'text'", "twice"),
                                       {"out:in.csv": "id,text,rating,text\nn1,first,1,second\n"}),
    "csv duplicated id header": Case(INGEST_CSV, ("in.csv:1", "'id'", "twice"),
                                     {"out:in.csv": "id,text,rating,id\nn1,one,1,n2\nn3,two,2,n4\n"}),
    "jsonl duplicated key": Case(INGEST, ("in.jsonl:2", "'text'", "twice"), {
        "out:in.jsonl": ROW + "\n" + '{"id": "n2", "text": "a", "rating": 1, "text": "b"}\n'}),
    "metrics JSON duplicated key": Case(["register", MODEL, "{out}/w", "--metrics", "{out}/m.json"],
                                        ("m.json:3", "'loss'", "twice"),
                                        {"out:m.json": '{\n  "loss": 1.5,\n  "loss": 0.5\n}\n', "out:w/a": "x"}),
    "results JSON duplicated key": Case(["report", "{out}/r.json"], ("r.json:", "'verdict'", "twice"), {
        "out:r.json": _results(lambda t: t.replace('"verdict":', '"verdict": "fail",\n  "verdict":', 1))}),
    "train output escapes the repository": Case(TRAIN, ("train.yaml", "output.model"),
                                                {"out:train.yaml": _config(output={"model": "../../../escaped"})}),
    "train output with a slash": Case(TRAIN, ("train.yaml", "output.model"),
                                      {"out:train.yaml": _config(output={"model": "a/b"})}),
    "train dataset reference that is a path": Case(TRAIN, ("train.yaml", "dataset"),
                                                   {"out:train.yaml": _config(dataset="../x@v1")}),
    # --- item 6: names that are not what they look like ------------------------------------------
    "alias with a trailing newline": Case(["alias", "set", MODEL, "production\n", "v1"], ("alias 'production",)),
    "model name with a trailing newline": Case(["model", "create", "other\n"], ("model name 'other",)),
    "data set name with a trailing newline": Case(["dataset", "create", "d\n", "--column", "text:string",
                                                   "--text-field", "text", "--key", "text"], ("data set name 'd",)),
    "reference with a trailing newline": Case(["show", f"{MODEL}@staging\n"], ("neither a version",)),
    "alias file with a trailing newline (check)": Case(
        ["check"], ("aliases/canary\\n.yaml",), {f"repo:registry/{MODEL}/aliases/canary\n.yaml": "version: v1\n"}),
    "production.yml beside production.yaml": Case(["check"], ("aliases/production.yml", "only .yaml"),
                                                  {f"repo:registry/{MODEL}/aliases/production.yml": "version: v1\n"}),
    "staging.YAML": Case(["check"], ("aliases/staging.YAML", "only .yaml"),
                         {f"repo:registry/{MODEL}/aliases/staging.YAML": "version: v1\n"}),
    "a stray file among the aliases": Case(["check"], ("aliases/README.md", "only .yaml"),
                                           {f"repo:registry/{MODEL}/aliases/README.md": "notes\n"}),
    # --- issue 17, item 8 --------------------------------------------------------------------------
    "prompt add --note with a lone surrogate": Case(["prompt", "add", MODEL, "--config", "{out}/p.yaml", "--note",
                                                     "\ud800"], ("note", "surrogate"), {"out:p.yaml": "base: x\n"}),
    "alias set --note with a lone surrogate": Case(["alias", "set", MODEL, "canary", "v1", "--note", "a\udfffb"],
                                                   ("note", "surrogate")),
    "register --note that is not UTF-8": Case(["register", MODEL, "{out}/w", "--note", "\udced\udca0\udc80"],
                                              ("note", "not UTF-8"), {"out:w/a.bin": "x"}),
    "100 KB note": Case(["alias", "set", MODEL, "canary", "v1", "--note", HUGE], ("note", "100,000 characters")),
    "dataset create --key id --key id": Case(["dataset", "create", "d2", "--column", "id:string", "--column",
                                              "text:string", "--text-field", "text", "--key", "id", "--key", "id"],
                                             ("key", "'id' twice")),
}


def _materialise(case: Case, root: Path, out: Path) -> list[str]:
    for target, content in case.files.items():
        where, rel = target.split(":", 1)
        path = (root if where == "repo" else out) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content(root) if callable(content) else content, encoding="utf-8")
    return [a.replace("{out}", str(out)) for a in case.args]


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _Timeout(f"no answer within {DEADLINE_S} s")


def _outside(out: Path) -> set[Path]:
    """What exists around the repository (where an escaping path would write)."""
    return {p for d in (out, out.parent, out.parent.parent) for p in d.iterdir()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_sentence_and_changes_nothing(repo: Path, name: str) -> None:
    case = CASES[name]
    out = repo.parent
    args = _materialise(case, repo, out)
    before, around = git_state(repo), _outside(out)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(DEADLINE_S)
    try:
        result = run_gitops(*args, cwd=repo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    text = result.stdout + result.stderr
    assert result.exit_code == 1, (result.exit_code, text[:2000])
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("... ")]
    assert lines and lines[0].startswith("Error: "), result.stderr[:2000]
    assert len(result.stderr) <= MAX_ERROR_CHARS, result.stderr[:3000]
    for needle in case.needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert git_state(repo) == before
    assert not (repo / ".gitops" / "runs").exists(), "training work began before the input was checked"
    assert _outside(out) == around


def test_refusing_does_not_take_long_or_much_memory(repo: Path) -> None:
    """The bombs are refused while reading, not after expanding: a 497-byte alias file once took 3.9 GB."""
    import tracemalloc

    case = CASES["billion laughs in gitops.yaml (check)"]
    args = _materialise(case, repo, repo.parent)
    tracemalloc.start()
    started = time.process_time()
    try:
        result = run_gitops(*args, cwd=repo)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1 and peak < 50 * 1024 * 1024, peak
    assert time.process_time() - started < DEADLINE_S


def test_oversized_inputs_are_refused_before_reading(repo: Path) -> None:
    """Sparse files as large as the caps: refused by their size, so the test costs no disk or memory."""
    from gitops.data import rows
    from gitops.eval import results
    from gitops.registry import register
    from gitops.train import train_config

    out = repo.parent
    big = {"in.jsonl": rows.MAX_FILE_BYTES, "m.json": register.MAX_METRICS_BYTES,
           "r.json": results.MAX_RESULTS_BYTES, "train.yaml": train_config.MAX_CONFIG_BYTES}
    for name, size in big.items():
        with (out / name).open("wb") as fh:
            fh.truncate(size + 1)
    (out / "w").mkdir()
    (out / "w" / "a.bin").write_text("x")
    before = git_state(repo)
    for args, needle in [(["ingest", f"{out}/in.jsonl", "--dataset", DATASET], "in.jsonl"),
                         (["register", MODEL, f"{out}/w", "--metrics", f"{out}/m.json"], "m.json"),
                         (["report", f"{out}/r.json"], "r.json"), (["train", f"{out}/train.yaml"], "train.yaml")]:
        result = run_gitops(*args, cwd=repo)
        assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert needle in result.stderr and "larger than" in result.stderr, result.stderr
    assert git_state(repo) == before


def test_a_good_batch_still_ingests_after_the_refusals(repo: Path) -> None:
    """The guards refuse what is wrong, not what is merely unusual: long text, unicode, big-but-sane ints."""
    out = repo.parent
    rows = [{"id": "u1", "text": "ünïcödé 😀 " + "long " * 2000, "rating": 2 ** 62},
            {"id": "u2", "text": "plain", "rating": -5}]
    (out / "ok.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out / "ok.csv").write_text("id,text,rating\nu3,\"a, b\",7\n", encoding="utf-8")
    result = run_gitops("ingest", str(out / "ok.jsonl"), str(out / "ok.csv"), "--dataset", DATASET, cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert os.path.exists(repo / DATASET_YAML)


def test_a_column_or_split_given_twice_is_a_usage_error(repo: Path) -> None:
    """``--column id:string --column id:int`` kept one of them without a word (issue 17, item 8)."""
    before = git_state(repo)
    for extra, needle in ((["--column", "id:int", "--split", "train=1"], "--column"),
                          (["--split", "train=0.5", "--split", "train=0.5"], "--split")):
        result = run_gitops("dataset", "create", "d3", "--column", "id:string", "--column", "text:string",
                            "--text-field", "text", "--key", "id", *extra, cwd=repo)
        assert result.exit_code == 2 and needle in result.stderr and "given twice" in result.stderr, result.stderr
    assert git_state(repo) == before
