"""Random YAML never crashes the loader (it loads or raises a GitopsError), and registries built
from the schema go through `gitops check`: valid ones pass, targeted breakage names file and line."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops.core import reader as store
from gitops.errors import GitopsError

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["v1", "v2", "hf", "ct2", "../x", "production"]))
keys = st.one_of(st.sampled_from(["name", "versions", "format", "path", "md5", "protected", "gates", "v1",
                                  "v2", "version", "columns", "key", "text_field", "splits", "metrics"]),
                 st.text(max_size=8), st.integers())
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=5)),
                         max_leaves=25)
raw_text = st.text(alphabet=st.sampled_from(list("ab:-[]{}\n #'\"!&*?|>%@`v1.0\t")), max_size=80)


def _texts_for(text: str) -> dict[str, str]:
    return {"registry/m/model.yaml": text, "registry/m/aliases/staging.yaml": text,
            "registry/datasets/reviews.yaml": text}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_load_or_raise_gitops_error(doc) -> None:
    text = yaml.safe_dump(doc)
    try:
        reg = store.parse_texts(_texts_for(text))
        reg.raise_problems()
    except GitopsError as exc:
        assert str(exc).strip()


@settings(max_examples=300, deadline=None)
@given(raw_text)
def test_random_text_loads_or_raises_gitops_error(text: str) -> None:
    try:
        store.parse_texts(_texts_for(text)).raise_problems()
    except GitopsError as exc:
        assert str(exc).strip()


# --- registries built from the schema, checked through `gitops check` ------------------------------
#
# The strategies follow registry/*/model.yaml, registry/*/aliases/*.yaml and registry/datasets/*.yaml
# as documented (names, version ids, formats, md5s, owners, gates, splits), so generated registries
# reach versions with parents, aliases and data set versions. Each example is written into one real
# repository (made by `gitops init`) with a DVC pointer per version; `gitops codeowners --write` then
# `gitops check` run through the CLI. A valid registry must pass; a targeted breakage must exit 1
# with one problem naming the broken file and the line of the broken key, never a traceback.

FORMATS = ("peft-lora", "hf", "ct2", "prompt")
QUANTIZATIONS = ("int8", "int8_float16", "int16", "float16", "bfloat16", "float32")
COLUMN_TYPES = ("string", "int", "float", "bool")

LOWER, DIGITS, HEX = "abcdefghijklmnopqrstuvwxyz", "0123456789", "0123456789abcdef"


def _word(first: str, rest: str, max_size: int) -> st.SearchStrategy[str]:
    """A name: one character of ``first``, then up to ``max_size`` of ``rest`` (no from_regex: its
    Unicode tables cost seconds per run)."""
    return st.builds(str.__add__, st.sampled_from(first), st.text(rest, max_size=max_size))


model_names = _word(LOWER, LOWER + DIGITS + "-", 8).filter(lambda n: n != "datasets")
alias_names = _word(LOWER, LOWER + DIGITS + "_-", 8).filter(lambda a: a != "latest" and not re.fullmatch(r"v[0-9]+", a))
owners = st.one_of(st.builds("@{}/{}".format, _word(LOWER, LOWER + "-", 6), _word(LOWER, LOWER + "._-", 6)),
                   st.builds("@{}".format, _word(LOWER, LOWER + DIGITS + "-", 6)),
                   st.builds("{}@{}.org".format, _word(LOWER, LOWER, 5), _word(LOWER, LOWER, 5)))
md5s = st.builds(str.__add__, st.text(HEX, min_size=32, max_size=32), st.sampled_from(["", ".dir"]))
texts = st.text(max_size=16)
numbers = st.one_of(st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False))
metric_names = _word(LOWER, LOWER + "_", 10)
timestamps = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _optional(draw, doc: dict, key: str, strategy) -> None:
    if draw(st.booleans()):
        doc[key] = draw(strategy)


@st.composite
def versions_of(draw, name: str, min_size: int = 0) -> dict:
    out = {}
    for i in range(1, draw(st.integers(min_size, 4)) + 1):
        record = {"format": draw(st.sampled_from(FORMATS)), "path": f"models/{name}/v{i}", "md5": draw(md5s)}
        if i > 1 and draw(st.integers(0, 3)):  # three in four: lineage is what check walks
            record["parent"] = f"v{draw(st.integers(1, i - 1))}"
        _optional(draw, record, "quantization", st.sampled_from(QUANTIZATIONS))
        _optional(draw, record, "base_model", texts)
        _optional(draw, record, "dataset", st.just("reviews@v1"))
        _optional(draw, record, "metrics", st.dictionaries(metric_names, numbers, max_size=3))
        _optional(draw, record, "config", st.dictionaries(metric_names, numbers, max_size=2))
        _optional(draw, record, "commit", st.text(HEX, min_size=40, max_size=40))
        _optional(draw, record, "created_at", timestamps)
        _optional(draw, record, "author", texts)
        _optional(draw, record, "note", texts)
        out[f"v{i}"] = record
    return out


@st.composite
def models(draw, name: str, min_versions: int = 0, min_aliases: int = 0) -> dict:
    doc: dict = {"name": name}
    _optional(draw, doc, "description", texts)
    _optional(draw, doc, "task", st.sampled_from(["text-generation", "summarization"]))
    _optional(draw, doc, "owners", st.lists(owners, min_size=1, max_size=2))
    _optional(draw, doc, "protected", st.dictionaries(alias_names, st.lists(owners, min_size=1, max_size=2),
                                                      min_size=1, max_size=2))
    bounds = st.dictionaries(st.sampled_from(["max", "min", "max_increase_pct", "max_decrease_pct"]), numbers,
                             min_size=1, max_size=2)
    _optional(draw, doc, "gates", st.lists(st.builds(lambda m, b: {"metric": m, **b}, metric_names, bounds),
                                           min_size=1, max_size=2))
    doc["versions"] = draw(versions_of(name, max(min_versions, 1 if min_aliases else 0)))
    aliases = {}
    if doc["versions"]:
        targets = st.sampled_from(sorted(doc["versions"]))
        for alias in draw(st.lists(alias_names, min_size=min_aliases, max_size=3, unique=True)):
            aliases[alias] = {"version": draw(targets)}
            _optional(draw, aliases[alias], "note", texts)
    return {"doc": doc, "aliases": aliases}


@st.composite
def datasets(draw, name: str, min_versions: int = 0) -> dict:
    columns = draw(st.dictionaries(_word(LOWER, LOWER + "_", 6), st.sampled_from(COLUMN_TYPES),
                                   min_size=1, max_size=4))
    text_columns = [c for c, t in columns.items() if t == "string"] or ["text"]
    columns.setdefault("text", "string")
    weights = draw(st.dictionaries(_word(LOWER, LOWER, 5), st.integers(1, 9), min_size=1, max_size=4))
    splits = {k: w / sum(weights.values()) for k, w in weights.items()}
    doc = {"name": name, "columns": columns, "text_field": draw(st.sampled_from(text_columns)),
           "key": draw(st.lists(st.sampled_from(sorted(columns)), min_size=1, max_size=2, unique=True)),
           "splits": splits}
    _optional(draw, doc, "description", texts)
    doc["versions"] = {}
    for i in range(1, draw(st.integers(min_versions, 3)) + 1):
        counts = {k: draw(st.integers(0, 10**6)) for k in splits}
        record = {"rows": sum(counts.values()), "splits": counts,
                  "batch": f"data/{name}/b{i:06d}-{draw(st.text(HEX, min_size=10, max_size=10))}.jsonl",
                  "md5": draw(md5s)}
        _optional(draw, record, "total_rows", st.integers(0, 10**9))
        _optional(draw, record, "source", texts)
        _optional(draw, record, "created_at", timestamps)
        _optional(draw, record, "author", texts)
        doc["versions"][f"v{i}"] = record
    return doc


@st.composite
def registries(draw, full: bool = False) -> dict:
    """Models (with aliases) and data sets; ``full``: the first model has a version and an alias and
    the first data set a version, for breakages that need them."""
    names = draw(st.lists(model_names, min_size=1, max_size=2, unique=True))
    ds_names = draw(st.lists(model_names, min_size=1 if full else 0, max_size=2, unique=True))
    return {"models": {n: draw(models(n, min_versions=int(full and i == 0), min_aliases=int(full and i == 0)))
                       for i, n in enumerate(names)},
            "datasets": {n: draw(datasets(n, min_versions=int(full and i == 0))) for i, n in enumerate(ds_names)}}


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def registry_texts(reg: dict) -> dict[str, str]:
    """Every file a registry is made of, relative to the repository root: YAML plus DVC pointers."""
    files = {}
    for name, model in reg["models"].items():
        files[f"registry/{name}/model.yaml"] = _dump(model["doc"])
        for alias, doc in model["aliases"].items():
            files[f"registry/{name}/aliases/{alias}.yaml"] = _dump(doc)
        for record in (model["doc"].get("versions") or {}).values():
            if isinstance(record, dict) and isinstance(record.get("path"), str) and ".." not in record["path"]:
                # as DVC writes it (an all-digit md5 is quoted, not read back as a number)
                md5 = model.get("pointer_md5", record.get("md5"))
                files[f"{record['path']}.dvc"] = _dump({"outs": [{"md5": md5, "path": "x"}]})
    for name, doc in reg["datasets"].items():
        files[f"registry/datasets/{name}.yaml"] = _dump(doc)
    return files


def line_of(text: str, path: list) -> int:
    """1-based line of the last key of ``path`` (mapping keys, list indexes) in YAML ``text``."""
    node, line = yaml.compose(text), 1
    for step in path:
        if isinstance(node, yaml.SequenceNode):
            node = node.value[step]
            line = node.start_mark.line + 1
            continue
        key_node, node = next((k, v) for k, v in node.value if k.value == str(step))
        line = key_node.start_mark.line + 1
    return line


# Each breakage: (file kind, how it breaks the registry's first model / alias / data set, where the
# problem is: a key path whose line the message must name, "text" for text-level damage located by
# the breakage itself).
def _first(reg: dict) -> tuple[str, dict, str, str, dict, str, dict]:
    name, model = next(iter(reg["models"].items()))
    version = max(model["doc"]["versions"])
    alias = min(model["aliases"])
    ds_name, ds = next(iter(reg["datasets"].items()))
    return name, model, version, alias, model["aliases"][alias], ds_name, ds


def _model_key(key: str, value: object):
    def apply(reg: dict) -> tuple[str, list]:
        name, model, *_ = _first(reg)
        model["doc"][key] = value
        return f"registry/{name}/model.yaml", [key]
    return apply


def _version_key(key: str, value: object):
    def apply(reg: dict) -> tuple[str, list]:
        name, model, version, *_ = _first(reg)
        record = model["doc"]["versions"][version]
        record[key] = value(version) if callable(value) else value
        return f"registry/{name}/model.yaml", ["versions", version, key]
    return apply


def _bad_version_id(reg: dict) -> tuple[str, list]:
    name, model, version, *_ = _first(reg)
    versions = model["doc"]["versions"]
    versions["version-1"] = versions.pop(version)
    return f"registry/{name}/model.yaml", ["versions", "version-1"]


def _gate_without_bound(reg: dict) -> tuple[str, list]:
    name, model, *_ = _first(reg)
    model["doc"]["gates"] = [{"metric": "loss"}]
    return f"registry/{name}/model.yaml", ["gates", 0]


def _alias_key(key: str, value: object):
    def apply(reg: dict) -> tuple[str, list]:
        name, _, _, alias, alias_doc, *_ = _first(reg)
        alias_doc[key] = value
        return f"registry/{name}/aliases/{alias}.yaml", [key]
    return apply


def _dataset(change):
    def apply(reg: dict) -> tuple[str, list]:
        *_, ds_name, ds = _first(reg)
        return f"registry/datasets/{ds_name}.yaml", change(ds)
    return apply


def _set(doc: dict, path: list, value: object) -> list:
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return path


BREAKAGES = {
    "unknown model key": _model_key("colour", "red"),
    "description not a string": _model_key("description", 5),
    "owner not an owner": _model_key("owners", ["nobody"]),
    "protected alias shaped like a version": lambda reg: (_model_key("protected", {"v2": ["@acme/mlops"]})(reg)[0],
                                                          ["protected", "v2"]),
    "gate without a bound": _gate_without_bound,
    "md5 not hex": _version_key("md5", "not-an-md5"),
    "path escapes the repository": _version_key("path", "../outside"),
    "unknown format": _version_key("format", "onnx"),
    "parent that does not exist": _version_key("parent", "v99"),
    "metrics not numbers": _version_key("metrics", {"loss": "low"}),
    "unknown version key": _version_key("weights", "x"),
    "version id not v<N>": _bad_version_id,
    "alias version not a version": _alias_key("version", "latest"),
    "unknown alias key": _alias_key("colour", "red"),
    "splits do not add up": _dataset(lambda ds: _set(ds, ["splits"], {"train": 0.5, "test": 0.4})),
    "text_field not a column": _dataset(lambda ds: _set(ds, ["text_field"], "no_such_column")),
    "text_field null": _dataset(lambda ds: _set(ds, ["text_field"], None)),
    "key column unknown": _dataset(lambda ds: _set(ds, ["key"], ["no_such_column"])),
    "column type unknown": _dataset(lambda ds: _set(ds, ["columns", next(iter(ds["columns"]))], "text")),
    "data set rows negative": _dataset(lambda ds: _set(ds, ["versions", "v1", "rows"], -1)),
    "data set batch escapes": _dataset(lambda ds: _set(ds, ["versions", "v1", "batch"], "/etc/passwd")),
}
TEXT_BREAKAGES = ("duplicate key", "unclosed bracket")


def _alias_to_missing_version(reg: dict) -> tuple[str, None]:
    name, _, _, alias, alias_doc, *_ = _first(reg)
    alias_doc["version"] = "v99"
    return f"registry/{name}/aliases/{alias}.yaml", None


def _pointer_disagrees(reg: dict) -> tuple[str, None]:
    name, model, version, *_ = _first(reg)
    model["doc"]["versions"][version]["md5"] = "f" * 32  # the pointer is written from the record...
    model["pointer_md5"] = "e" * 32  # ...unless the registry says otherwise: then they disagree
    return f"registry/{name}/model.yaml", None


# Problems across files: gitops names the file but (today) no line, so only the file is required.
CROSS_FILE_BREAKAGES = {"alias to a missing version": _alias_to_missing_version,
                        "DVC pointer disagrees with the md5": _pointer_disagrees}


@pytest.fixture(scope="module")
def check_repo(tmp_path_factory: pytest.TempPathFactory):
    """One repository made by `gitops init`; each example replaces its registry/ and models/."""
    import os

    from tests.conftest import run_gitops

    root = tmp_path_factory.mktemp("property") / "repo"
    home = root.parent / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = A\n\temail = a@example.com\n[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("DVC_NO_ANALYTICS", "1")
        result = run_gitops("init", str(root), "--remote", str(root.parent / "remote"))
        assert result.exit_code == 0, result.stderr
        assert os.path.isdir(root / "registry")
        yield root


def write_registry(root, files: dict[str, str]) -> None:
    import shutil

    for sub in ("registry", "models"):
        shutil.rmtree(root / sub, ignore_errors=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def run_check(root) -> tuple[int, str]:
    """`gitops codeowners --write` (refused when the registry is broken), then `gitops check`."""
    from tests.conftest import run_gitops

    run_gitops("codeowners", "--write", "-C", str(root))
    result = run_gitops("check", "-C", str(root))
    return result.exit_code, result.stdout + result.stderr


def _round_trips(reg: dict) -> bool:
    return all(yaml.safe_load(text) is not None for text in registry_texts(reg).values())


def test_valid_registries_pass_gitops_check(check_repo) -> None:
    seen = {"examples": 0, "versions": 0, "parents": 0, "aliases": 0, "protected": 0, "dataset versions": 0}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(registries())
    def run(reg: dict) -> None:
        write_registry(check_repo, registry_texts(reg))
        code, output = run_check(check_repo)
        assert (code, "Traceback" in output) == (0, False), output
        docs = [m["doc"] for m in reg["models"].values()]
        seen["examples"] += 1
        seen["versions"] += any(d["versions"] for d in docs)
        seen["parents"] += any("parent" in v for d in docs for v in d["versions"].values())
        seen["aliases"] += any(m["aliases"] for m in reg["models"].values())
        seen["protected"] += any("protected" in d for d in docs)
        seen["dataset versions"] += any(d["versions"] for d in reg["datasets"].values())

    run()
    # the strategy reaches the parts of the schema that matter (the old one: versions in 0 of 300)
    n = seen.pop("examples")
    assert n >= 50 and all(count >= n // 5 for count in seen.values()), (n, seen)


@pytest.mark.parametrize("kind", [*BREAKAGES, *TEXT_BREAKAGES, *CROSS_FILE_BREAKAGES])
def test_a_broken_registry_fails_naming_file_and_line(check_repo, kind: str) -> None:
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(registries(full=True))
    def run(reg: dict) -> None:
        if kind in BREAKAGES:
            rel, path = BREAKAGES[kind](reg)
            files = registry_texts(reg)
            line = line_of(files[rel], path)
        elif kind in CROSS_FILE_BREAKAGES:
            rel, line = CROSS_FILE_BREAKAGES[kind](reg)
            files = registry_texts(reg)
        else:
            files = registry_texts(reg)
            name = next(iter(reg["models"]))
            rel = f"registry/{name}/model.yaml"
            lines = files[rel].splitlines()
            extra = "name: again" if kind == "duplicate key" else "colour: [unclosed"
            files[rel] = "\n".join([*lines, extra, ""])
            line = len(lines) + 1 if kind == "duplicate key" else None
        write_registry(check_repo, files)
        code, output = run_check(check_repo)
        assert code == 1 and "Traceback" not in output, output
        where = f"{rel}:{line}:" if line else f"{rel}:"
        assert where in output, f"{kind}: expected '{where}' in:\n{output}"

    run()
