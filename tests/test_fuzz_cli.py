"""Keep issue 9 closed: a hypothesis fuzz of the CLI over registry files, ingest files, train configs
and references, in process against one prepared repository.

Every case writes its fuzzed input, runs one real command (click's CliRunner, no mocks) and checks
what must hold for any input whatsoever:

- no traceback: the command ends in exit 0 or 1 (2 for a usage error where arguments are fuzzed),
  a failure says ``Error: ...`` first, and stderr is bounded;
- no hang: each case runs under a SIGALRM deadline (:data:`CASE_DEADLINE_S`);
- bounded memory: the process's peak RSS may not grow by more than :data:`CASE_MEMORY_MB` in a case;
- a failure changes nothing: HEAD and ``git status`` (untracked files included) are as before.

Between cases the repository is restored cheaply: the fuzzed file is written back (or removed), and
only a command that committed costs a ``git reset --hard``. Runs are derandomized, so CI sees the
same cases every time. ``test_fuzz_ingest_that_stores`` runs a few cases down the expensive path
(rows that are new, stored and committed) on fresh copies.
"""

from __future__ import annotations

import csv
import io
import json
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run_gitops
from tests.hostile_fixtures import DATASET, MODEL, copy_repo, isolated, make_hostile_repo, train_config

CASE_DEADLINE_S = 20  # a hang guard; a case takes a few ms to a few hundred
CASE_MEMORY_MB = 256  # peak RSS growth allowed in one case (the YAML bomb once took 3.9 GB)
MAX_STDERR = 40_000  # 60 lines of 500 characters, and some
MAX_STDOUT = 4_000_000
TRAIN_ONLY = "trainonly"  # a data set with only a train split: a valid config stops at 'no split valid'
FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
KNOWN_IDS = [f"r{i}" for i in range(12)]  # the ids the prepared data sets hold: fuzzed rows never add any

BILLION_LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                           + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]"
                              for i in range(8)]) + "\n"
HOSTILE = [
    "", " ", "\n", "\t", "\x00", "\r\n", "production\n", "staging.", "v0", "v01", "v1\n", "latest", "datasets",
    "../../etc/passwd", "/abs/path", "a/b", "C:\\x", "-", "--help", "--output=/tmp/gitops-fuzz", "-C", "@", "@@",
    "x@", "@v1", f"{MODEL}@", f"{MODEL}@@v1", f"{MODEL}@../x", "HEAD~999", "HEAD^{tree}", "💥", "ｆｕｌｌ",  # noqa: RUF001 - full-width letters on purpose
    "a\u2028b", "\ud800", "x" * 70, "x" * 100_000, "9" * 400, "9" * 5000, "1e999", "-1e999", "nan", ".inf",
    "0x1f", "0o17", "2024-13-45", "~", "null", "yes", "on", "*a", "&a x", "!!python/object/apply:os.system [x]",
    "<<: {a: 1}", "? x", "[" * 200, "{" * 200, "{text}", "{text!r}", "{text:>200000000}", "{0}", "{}", "{{", "}",
    "{text.__class__}", "{text[0]}", "%s", "$(touch pwned)", "`id`", BILLION_LAUGHS,
]


def _pools(seed: int = 9) -> tuple[list[str], list[str], list[Any]]:
    """Leaf values, made once from a fixed seed: hypothesis picks among them in one draw each (a
    character-by-character ``st.text`` costs a draw per character, and the fuzz has a minute)."""
    import random
    import sys

    rng = random.Random(seed)
    alphabets = ["abcxyz019", "abc.-_@/\\", " \t\n\r\x00\x7f\x1b", "{}[]:!>%*&#'\"", "éßø中文ﬁ😀\u200b\u2028\ufeff",
                 "\ud800\udc00\udfff\udcff", "ABCvV"]
    texts = [*HOSTILE]
    for _ in range(400):
        length = rng.choice([1, 2, 5, 12, 40, 65, 200])
        chars = "".join(rng.choice(alphabets) for _ in range(3))
        texts.append("".join(rng.choice(chars) for _ in range(length)))
    names = [*HOSTILE[:40]]
    for _ in range(200):
        length = rng.choice([1, 3, 8, 30, 63, 64, 65])
        first = rng.choice("abcz0v-._ A")
        names.append(first + "".join(rng.choice("abcxyz0189._-") for _ in range(length - 1)))
    numbers: list[Any] = [0, -1, 1, 2**31, 2**32, 2**63, -(2**63) - 1, 2**64, 10**19, 10**400, -(10**400),
                          0.5, -0.0, 1e-310, 1e308, sys.float_info.max, float("inf"), float("-inf"), float("nan")]
    return texts, names, numbers


TEXTS, NAMES, NUMBERS = _pools()
names = st.sampled_from(NAMES)
any_text = st.sampled_from(TEXTS)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-100, 100_000), st.sampled_from(NUMBERS), any_text)
values = st.one_of(scalars, scalars, st.lists(scalars, max_size=3), st.dictionaries(names, scalars, max_size=2))


# Cases per fuzz: together at least 1,000 in every CI run (each test checks it ran all of its own).
CASES = {"registry": 420, "ingest": 250, "train": 200, "refs": 200}
assert sum(CASES.values()) >= 1000


def _fuzz(harness: Harness, kind: str, examples: int, case: Callable[[Harness, st.DataObject], None]) -> None:
    """Run ``case`` for ``examples`` derandomized examples; every one must reach the command."""
    before = harness.runs.get(kind, 0)

    @settings(FUZZ, max_examples=examples)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case(harness, data)

    run()
    assert harness.runs.get(kind, 0) - before >= examples, harness.runs


class _Hang(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _Hang(f"a case ran longer than {CASE_DEADLINE_S} s")


def _argv(text: str) -> str:
    """``text`` as a command line can carry it: bytes decode with surrogateescape, so a lone
    surrogate arrives as the escapes of its UTF-8 bytes, and NUL cannot arrive at all."""
    return text.replace("\x00", "0").encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")


def _encode(content: str | bytes) -> bytes:
    # surrogatepass: a lone surrogate written as text becomes the invalid UTF-8 an attacker would send
    return content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")


@dataclass
class Harness:
    """The prepared repository, one command at a time, with the invariants checked after each."""

    root: Path
    out: Path  # beside the repository: where input files go
    head: str = ""
    runs: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.baseline = self.state()
        self.head = self.baseline[0]

    def state(self) -> tuple[str, str]:
        """HEAD and the status with untracked files, in one git call."""
        out = subprocess.run(["git", "status", "--porcelain=v2", "--branch", "--untracked-files=all"],
                             cwd=self.root, capture_output=True, text=True, check=True).stdout
        head = next(line.split()[2] for line in out.splitlines() if line.startswith("# branch.oid"))
        return head, "\n".join(line for line in out.splitlines() if not line.startswith("#"))

    def case(self, kind: str, args: list[str], files: dict[str, str | bytes] | None = None, *,
             usage_ok: bool = False, must_fail: bool = False) -> Any:
        """Write ``files`` (``repo:``/``out:`` prefixed), run ``args``, check every invariant, restore.

        One ``git status`` per case: after the command the written files must still hold what was
        written (compared byte for byte), and once they are put back HEAD and the status must be the
        baseline's; only a command that succeeded may differ (then it is reset)."""
        written = self._write(files or {})
        try:
            result = self._invoke(args)
            self._check(args, result, usage_ok, must_fail)
            if result.exit_code != 0:
                changed = [str(p) for p, _old, new in written if (p.read_bytes() if p.exists() else None) != new]
                assert not changed, f"{_short(args)}: a failure changed {changed}"
            self.runs[kind] = self.runs.get(kind, 0) + 1
        finally:
            self._restore(written)
        if self.state() != self.baseline:
            assert result.exit_code == 0, f"{_short(args)}: a failure changed the repository: {self.state()}"
            self._reset()
        return result

    def _invoke(self, args: list[str]) -> Any:
        from gitops.cli import main

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CASE_DEADLINE_S)
        try:
            result = CliRunner().invoke(main, args, catch_exceptions=True)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        assert grew_mb < CASE_MEMORY_MB, f"{_short(args)}: peak memory grew by {grew_mb:.0f} MB"
        return result

    def _check(self, args: list[str], result: Any, usage_ok: bool, must_fail: bool) -> None:
        what = _short(args)
        exc = result.exception
        assert exc is None or isinstance(exc, SystemExit), f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
        allowed = {0, 1, 2} if usage_ok else {0, 1}
        assert result.exit_code in allowed, f"{what}: exit {result.exit_code}: {result.stderr[-500:]}"
        text = result.stdout + result.stderr
        assert "Traceback" not in text, f"{what}: {text[-2000:]}"
        assert len(result.stderr) <= MAX_STDERR and len(result.stdout) <= MAX_STDOUT, f"{what}: output unbounded"
        if result.exit_code == 1:
            first = next((x for x in result.stderr.splitlines() if x.strip() and not x.startswith("... ")), "")
            assert first.startswith("Error: "), f"{what}: {result.stderr[:500]}"
        assert not must_fail or result.exit_code != 0, f"{what}: accepted: {result.stdout[:300]}"

    def _write(self, files: dict[str, str | bytes]) -> list[tuple[Path, bytes | None, bytes]]:
        written = []
        for target, content in files.items():
            where, rel = target.split(":", 1)
            path = (self.root if where == "repo" else self.out) / rel
            data = _encode(content)
            written.append((path, path.read_bytes() if path.is_file() else None, data))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return written

    def _restore(self, written: list[tuple[Path, bytes | None, bytes]]) -> None:
        for path, old, _new in reversed(written):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)

    def _reset(self) -> None:
        """Undo a command that succeeded and committed (or left files): back to the baseline."""
        subprocess.run(["git", "reset", "-q", "--hard", self.head], cwd=self.root, check=True)
        subprocess.run(["git", "clean", "-fdq"], cwd=self.root, check=True)
        assert self.state() == self.baseline


def _short(args: list[str]) -> str:
    return " ".join(repr(a[:60]) if len(a) > 60 else repr(a) for a in args)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz")
    with isolated(base / "home"):
        root = make_hostile_repo(base)
        result = run_gitops("dataset", "create", TRAIN_ONLY, "--column", "id:string", "--column", "text:string",
                            "--column", "rating:int", "--text-field", "text", "--key", "id", "--split", "train=1",
                            cwd=root)
        assert result.exit_code == 0, result.stderr
        result = run_gitops("ingest", str(base / "batch.jsonl"), "--dataset", TRAIN_ONLY, cwd=root)
        assert result.exit_code == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def harness(template: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("fuzz-work")
    root = copy_repo(template, work / "repo")
    (work / "base-dir").mkdir()
    with isolated(work / "home"), pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        yield Harness(root, work)


# --- registry files --------------------------------------------------------------------------------

REGISTRY_FILES = [f"registry/{MODEL}/model.yaml", f"registry/{MODEL}/aliases/staging.yaml",
                  f"registry/datasets/{DATASET}.yaml", "gitops.yaml", f"models/{MODEL}/v1.dvc"]
READERS = [["show"], ["show", MODEL], ["show", f"{MODEL}@staging"], ["check"], ["dataset", "show", DATASET],
           ["deploy", "--base", "HEAD~1", "--head", "HEAD", "--dry-run"], ["diff", "HEAD", "WORKTREE"],
           ["history", MODEL], ["codeowners", "--check"]]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a loaded document (mappings and lists)."""
    out = [prefix]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        out += _paths(value, (*prefix, key))
    return out


def _mutate_structure(data: st.DataObject, text: str) -> str:
    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    action = data.draw(st.sampled_from(["replace", "add", "delete"]), label="action")
    if not path:
        doc = data.draw(values) if action == "replace" else doc
    else:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = data.draw(values, label="value")
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(names, label="key")] = data.draw(values, label="value")
    try:
        return yaml.dump(doc, Dumper=yaml.CSafeDumper, allow_unicode=data.draw(st.booleans()), sort_keys=False,
                         width=10**6)
    except (yaml.YAMLError, UnicodeError):
        return text + "\n" + str(doc)[:1000]


def _mutate_text(data: st.DataObject, text: str) -> str:
    lines = text.splitlines()
    at = data.draw(st.integers(0, len(lines)), label="line")
    how = data.draw(st.sampled_from(["insert", "replace", "truncate", "whole"]), label="how")
    fragment = data.draw(st.one_of(st.sampled_from(HOSTILE), any_text,
                                   st.builds(lambda k, v: f"{k}: {v}", names, any_text)), label="fragment")
    if how == "insert":
        return "\n".join([*lines[:at], fragment, *lines[at:]]) + "\n"
    if how == "replace":
        return "\n".join([*lines[:at], fragment, *lines[at + 1:]]) + "\n"
    if how == "truncate":
        return text[: data.draw(st.integers(0, len(text)))]
    return fragment


def test_fuzz_registry_files(harness: Harness) -> None:
    _fuzz(harness, "registry", CASES["registry"], _registry_case)


def _registry_case(harness: Harness, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(REGISTRY_FILES), label="file")
    text = (harness.root / rel).read_text(encoding="utf-8")
    mutated = data.draw(st.sampled_from([_mutate_structure, _mutate_text]), label="mutation")(data, text)
    if data.draw(st.booleans(), label="stray alias file"):
        stray = data.draw(st.sampled_from(["production.yml", "staging.YAML", "x.yaml.bak", "canary\n.yaml",
                                           "Prod.yaml", "v2.yaml", "latest.yaml", ".hidden.yaml"]))
        files = {f"repo:{rel}": mutated, f"repo:registry/{MODEL}/aliases/{stray}": "version: v1\n"}
    else:
        files = {f"repo:{rel}": mutated}
    harness.case("registry", data.draw(st.sampled_from(READERS), label="command"), files)


# --- ingest files ----------------------------------------------------------------------------------

row_ids = st.one_of(st.sampled_from(KNOWN_IDS), st.sampled_from(["", "   "]), st.integers(), st.none())
rows = st.builds(
    lambda row, extra, drop: {k: v for k, v in {**row, **extra}.items() if k not in drop},
    st.fixed_dictionaries({"id": row_ids, "text": st.one_of(any_text, scalars),
                           "rating": st.one_of(scalars, st.integers(-(2**70), 2**70))}),
    st.dictionaries(names, scalars, max_size=1), st.sets(st.sampled_from(["id", "text", "rating"]), max_size=1))
json_fragments = st.sampled_from([
    "[" * 100_000 + "]" * 100_000, '{"id": "r1", "text": "a", "rating": 1, "text": "b"}',
    '{"id": "r1", "text": "a", "rating": ' + "7" * 5000 + "}", '{"id": "r1", "text": "\\ud800", "rating": 1}',
    '{"id": "r1", "text": "a", "rating": NaN}', '{"id": "r1", "text": "a", "rating": 1e999}', "[1, 2]", "null",
    '"text"', "{", "\xff\xfe", '{"id": "r1", "text": ' + '"x",' * 3 + "}"])


def _jsonl(data: st.DataObject) -> str:
    lines = []
    for row in data.draw(st.lists(rows, max_size=6), label="rows"):
        try:
            lines.append(json.dumps(row, ensure_ascii=data.draw(st.booleans())))
        except (TypeError, ValueError):
            lines.append(str(row)[:200])
    lines += data.draw(st.lists(json_fragments, max_size=2), label="fragments")
    data.draw(st.randoms()).shuffle(lines)
    return "\n".join(lines) + "\n"


def _csv(data: st.DataObject) -> str:
    header = data.draw(st.one_of(st.just(["id", "text", "rating"]),
                                 st.lists(st.sampled_from(["id", "text", "rating", " id", "", "x"]), max_size=5),
                                 st.just(["id", "text", "rating", "text"]), st.just(["id", "text", "rating", "id"])),
                       label="header")
    body = io.StringIO()
    writer = csv.writer(body)
    writer.writerow(header)
    for row in data.draw(st.lists(rows, max_size=6), label="rows"):
        writer.writerow([str(row.get(h, ""))[:100_001] for h in header])
    text = body.getvalue()
    if data.draw(st.booleans(), label="garbage"):
        text += data.draw(st.sampled_from(['"unclosed,quote\n', "a,b,c,d,e,f\n", "\x00\n", "x" * 200_000 + "\n"]))
    return text


def test_fuzz_ingest_files(harness: Harness) -> None:
    _fuzz(harness, "ingest", CASES["ingest"], _ingest_case)


def _ingest_case(harness: Harness, data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(["jsonl", "csv"]), label="format")
    content = _jsonl(data) if fmt == "jsonl" else _csv(data)
    args = ["ingest", str(harness.out / f"in.{fmt}"), "--dataset", DATASET]
    if data.draw(st.booleans(), label="--skip-invalid"):
        args.append("--skip-invalid")
    result = harness.case("ingest", args, {f"out:in.{fmt}": content, f"out:in.{fmt}.rejects.jsonl": b""})
    assert "new version" not in result.stdout.lower() or result.exit_code == 0


# --- train configs ---------------------------------------------------------------------------------

templates = st.one_of(st.sampled_from(["{text}", "Review: {text}\n", "{id} {rating}: {text}", "{text!r}", "{text:d}",
                                       "{text:>200000000}", "{nope}", "{", "}", "{{text}}", "{0}", "{}", "x" * 5000,
                                       "{text.__class__.__mro__}"]),
                      st.builds(lambda a, f, s, b: f"{a}{{{f}{s}}}{b}", any_text,
                                st.sampled_from(["text", "id", "rating", "", "0"]),
                                st.sampled_from(["", "!r", "!s", ":>9", ":.3", ":%", "!z"]), any_text))
SECTION_KEYS = {"adapter": ["type", "r", "alpha", "dropout", "target_modules"],
                "trainer": ["epochs", "learning_rate", "batch_size", "max_steps", "seed", "eval_steps",
                            "gradient_accumulation_steps", "precision", "max_length"]}


def _train_config(data: st.DataObject, base_dir: Path) -> str:
    cfg = train_config(base_model=str(base_dir), dataset=f"{TRAIN_ONLY}@latest")
    cfg["base_model"] = data.draw(st.one_of(st.just(str(base_dir)), st.sampled_from(["nomodel@v1", f"{MODEL}@v9"]),
                                            any_text), label="base_model")
    cfg["dataset"] = data.draw(st.one_of(st.sampled_from([f"{TRAIN_ONLY}@latest", f"{TRAIN_ONLY}@v1"]), names),
                               label="dataset")
    cfg["prompt"]["template"] = data.draw(templates, label="template")
    cfg["output"]["model"] = data.draw(st.one_of(st.just(MODEL), names), label="output.model")
    for section, keys in SECTION_KEYS.items():
        for key in data.draw(st.lists(st.sampled_from(keys), max_size=3, unique=True), label=section):
            cfg[section][key] = data.draw(values, label=f"{section}.{key}")
    if data.draw(st.booleans(), label="extra key"):
        cfg[data.draw(names, label="extra")] = data.draw(values)
    try:
        return yaml.dump(cfg, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False, width=10**6)
    except (yaml.YAMLError, UnicodeError):
        return str(cfg)[:10_000]


def test_fuzz_train_configs(harness: Harness) -> None:
    _fuzz(harness, "train", CASES["train"], _train_case)


def _train_case(harness: Harness, data: st.DataObject) -> None:
    text = _train_config(data, harness.out / "base-dir")
    if data.draw(st.integers(0, 9), label="raw") == 0:
        text = data.draw(st.sampled_from([BILLION_LAUGHS, "[" * 5000, "\xff", "- a\n- b\n", "", "x: &a 1\ny: *a\n"]))
    args = ["train", str(harness.out / "train.yaml")]
    for _ in range(data.draw(st.integers(0, 2), label="sets")):
        key = data.draw(st.sampled_from(["trainer.learning_rate", "adapter.r", "prompt.template", "output.model",
                                         "trainer.seed", "nope.key", "adapter", "", "a..b"]))
        args += ["--set", _argv(f"{key}={data.draw(any_text)}")]
    if data.draw(st.booleans(), label="--alias"):
        args += ["--alias", _argv(data.draw(names))]
    before = set(harness.out.iterdir())
    harness.case("train", args, {"out:train.yaml": text}, usage_ok=True, must_fail=True)
    assert not (harness.root / ".gitops" / "runs").exists(), "training work began"
    assert set(harness.out.iterdir()) == before, "a train run wrote beside the repository"


# --- references ------------------------------------------------------------------------------------

REF_COMMANDS: list[Callable[[str], list[str]]] = [
    lambda r: ["show", r], lambda r: ["show", f"{MODEL}@{r}"], lambda r: ["alias", "set", MODEL, r, "v1"],
    lambda r: ["alias", "set", MODEL, "canary", r], lambda r: ["alias", "unset", MODEL, r],
    lambda r: ["dataset", "show", r], lambda r: ["dataset", "show", DATASET, "--rev", r],
    lambda r: ["diff", r, "HEAD"], lambda r: ["diff", "HEAD~1", r], lambda r: ["history", MODEL, r],
    lambda r: ["history", r], lambda r: ["check", "--base", r], lambda r: ["model", "create", r],
    lambda r: ["deploy", "--base", r, "--head", "HEAD", "--dry-run"],
    lambda r: ["ingest", r, "--dataset", DATASET], lambda r: ["ingest", str(Path("in.csv")), "--dataset", r],
]
refs = st.one_of(names, st.sampled_from(["v1", "staging", "production", "latest", "HEAD", "HEAD~1", "main",
                                         f"{MODEL}@v1", f"{DATASET}@v1", "origin/main"]),
                 st.builds(lambda a, b: f"{a}@{b}", names, names))


def test_fuzz_refs(harness: Harness) -> None:
    _fuzz(harness, "refs", CASES["refs"], _ref_case)


def _ref_case(harness: Harness, data: st.DataObject) -> None:
    ref = _argv(data.draw(refs, label="ref"))
    command = data.draw(st.sampled_from(REF_COMMANDS), label="command")
    harness.case("refs", command(ref), usage_ok=True)


# --- the expensive path: fuzzed rows that are new, stored and committed --------------------------------

new_rows = st.lists(st.fixed_dictionaries({
    "id": st.from_regex(r"n[a-z0-9]{1,12}", fullmatch=True),
    "text": st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1,
                    max_size=300).filter(lambda t: t.strip()),
    "rating": st.integers(-(2**63), 2**63 - 1)}), min_size=1, max_size=5, unique_by=lambda r: r["id"])


@settings(FUZZ, max_examples=12)
@given(batch=new_rows, fmt=st.sampled_from(["jsonl", "csv"]))
def test_fuzz_ingest_that_stores(template: Path, tmp_path_factory: pytest.TempPathFactory, batch: list[dict],
                                 fmt: str) -> None:
    """Valid rows with any text make a version that reads back exactly (the surrogate crash was here)."""
    from gitops.core.workspace import Workspace
    from gitops.data import batches

    work = tmp_path_factory.mktemp("store")
    with isolated(work / "home"):
        root = copy_repo(template, work / "repo")
        src = work / f"in.{fmt}"
        if fmt == "jsonl":
            src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch), encoding="utf-8")
        else:
            with src.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, ["id", "text", "rating"])
                writer.writeheader()
                writer.writerows(batch)
        started = time.monotonic()
        result = run_gitops("ingest", str(src), "--dataset", DATASET, cwd=root)
        assert result.exit_code == 0 and time.monotonic() - started < 60, result.stderr[-2000:]
        stored = {r["id"]: (r["text"], r["rating"]) for r in batches.read_rows(Workspace(root), f"{DATASET}@v2")}
        expect = {r["id"]: (r["text"], r["rating"]) for r in batch}
        assert {k: stored[k] for k in expect} == expect
        assert run_gitops("check", cwd=root).exit_code == 0
    shutil.rmtree(work, ignore_errors=True)


