"""Validated shapes of the files people edit under ``registry/``.

Each ``parse_*`` function takes a loaded YAML document and returns a dataclass, or records every
problem it finds in a :class:`Problems` list (file, line, key, message) and returns None. Records
are described as specs (:mod:`gitops.validation`); checks that span keys (a parent that must
exist, a text field that must be a column) follow in code. The loader is on the hot path of
``gitops show``: a version record is one spec walk, about 5 us.

The records themselves are in :mod:`gitops.core.records`; their plain form for the content cache
(:mod:`gitops.core.cache`) in :mod:`gitops.core.plain`.
"""

from __future__ import annotations

import re
from typing import Any

from gitops.core import refs
from gitops.core.records import DEFAULT_SPLITS, GATE_BOUNDS, Alias, Dataset, DatasetVersion, Gate, Model, Version
from gitops.core.task import CLASSIFICATION, parse_classification
from gitops.errors import shown
from gitops.validation import (
    REQUIRED,
    Check,
    Field,
    Invalid,
    Key,
    ListOf,
    MapOf,
    Problems,
    Record,
    Scalar,
    Typed,
    finite_number,
    validate,
)
from gitops.yamlio import LineMap

FORMATS = ("peft-lora", "hf", "ct2", "prompt", "head")
QUANTIZATIONS = ("int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
COLUMN_TYPES = ("string", "int", "float", "bool")
OWNER_RE = re.compile(r"^(@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9._-]+)?|[^@\s]+@[^@\s]+\.[^@\s]+)$")
MD5_RE = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Text normalisation steps a data set may name (``normalize:``), applied in the order written to every
# string value at ingest; gitops.data.normalize holds what each one does.
NORMALIZE_STEPS = ("html_unescape", "strip", "collapse_whitespace", "nfc")
SPLIT_KEY = "split"  # every stored row carries its split under this key, so no column may be named so


# --- value rules ---------------------------------------------------------------------------------

def is_number(value: Any) -> bool:
    """A finite int or float (not a bool) that fits a float: what metrics, gates and splits hold."""
    return finite_number(value)


_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relpath(path: str) -> str | None:
    """Why ``path`` may not be used as a repository path, or None when it is a plain relative path."""
    if not path or path[0] in "/\\" or _DRIVE.match(path):
        return f"'{shown(path)}' must be a path relative to the repository"
    if ".." in path and ".." in path.replace("\\", "/").split("/"):
        return f"'{shown(path)}' escapes the repository ('..' is not allowed)"
    return None


def owners_of(value: Any, doc: Any, key: Any, src: str, p: Problems, what: str) -> list[str]:
    """The valid owners in ``value`` (a name or a list); every bad one is a problem."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        p.add(src, doc, key, f"{what} must be a list of owners like '@org/team', '@user' or an e-mail")
        return []
    bad = [o for o in value if not OWNER_RE.fullmatch(o)]
    for o in bad:
        p.add(src, doc, key, f"{what}: '{shown(o)}' is not an owner ('@org/team', '@user' or an e-mail)")
    return [o for o in value if o not in bad]


def _one_of(name: str, allowed: tuple[str, ...]) -> Any:
    return lambda v: None if v in allowed else f"{shown(name)} '{shown(v)}' is not one of {', '.join(allowed)}"


def _path_rule(name: str) -> Any:
    return lambda v: f"{name} {why}" if (why := safe_relpath(v)) else None


def _md5_rule(v: str) -> str | None:
    if MD5_RE.fullmatch(v):
        return None
    return f"md5 '{shown(v)}' is not an md5 (32 hex digits, '.dir' for directories)"


def _normalize_rule(v: str) -> str | None:
    return None if v in NORMALIZE_STEPS else f"normalize step '{v}' is not one of {', '.join(NORMALIZE_STEPS)}"


def _parent_rule(v: str) -> str | None:
    return None if refs.is_version(v) else "parent must be a version id like v1"


def _metrics(value: Any) -> Any:
    if not isinstance(value, dict) or not all(isinstance(k, str) and is_number(v) for k, v in value.items()):
        raise Invalid("metrics must map names to numbers")
    return dict(value)


class _Metrics(Scalar):
    def conform(self, value: Any, path: str, ctx: Any, node: Any = None, key: Any = None) -> Any:
        try:
            return _metrics(value or {})
        except Invalid as exc:
            record = path.rsplit(".", 1)[0]
            raise Invalid(f"{record}: {exc.message}", node, key, path) from None


_TEXT = Scalar("str", nullable=True)
_REGISTRY_WORDS: dict[str, Any] = {"unknown": "unknown key '{key}' in {record} (allowed: {allowed})",
                                   "missing": "{record} is missing the required key '{key}'",
                                   "not_mapping": "{record} must be a mapping"}

MD5 = "3f1c0a8e1b5d4c2f9e7a6b5c4d3e2f1a.dir"  # an example, in the reference
VERSION_SPEC = Record({
    "format": Field(Scalar("str", rule=_one_of("format", FORMATS)), REQUIRED,
                    "What the weights are: " + ", ".join(f"`{f}`" for f in FORMATS) + ".", "peft-lora"),
    "path": Field(Scalar("str", rule=_path_rule("path")), REQUIRED,
                  "The weights' directory in the repository (DVC-tracked; a prompt version's config file).",
                  "models/review-autocomplete/v3"),
    "md5": Field(Scalar("str", rule=_md5_rule), REQUIRED, "DVC's md5 of the weights; every reader verifies it.", MD5),
    "quantization": Field(Scalar("str", nullable=True, rule=_one_of("quantization", QUANTIZATIONS)), None,
                          "A ct2 version's weight type: " + ", ".join(QUANTIZATIONS) + ".", "int8"),
    "parent": Field(Scalar("str", nullable=True, label="a version id like v1", rule=_parent_rule), None,
                    "The version of the same model it was trained or converted from.", "v2"),
    "base_model": Field(_TEXT, None, "The base it was trained on (`NAME@vN`, or a name or path).",
                        "smollm2-135m-instruct@v1"),
    "base_md5": Field(Scalar("str", nullable=True, rule=_md5_rule), None,
                      "A peft-lora adapter's base version md5: it is merged into exactly those weights.", MD5),
    "dataset": Field(_TEXT, None, "The data set version it was trained on.", "reviews@v2"),
    "config": Field(Typed((dict,), "a mapping", nullable=True), None,
                    "The effective train config (a prompt version: its prompt config).", {"trainer": {"epochs": 1}}),
    "config_hash": Field(_TEXT, None, "sha256 of the config's canonical JSON.", "9c1e5b..."),
    "commit": Field(_TEXT, None, "The git commit it was made from.", "0a1b2c3d4e5f"),
    "created_at": Field(_TEXT, None, "When it was registered (UTC, ISO 8601).", "2025-01-31T12:00:00Z"),
    "author": Field(_TEXT, None, "Who registered it (git's user).", "Ada <ada@example.com>"),
    "metrics": Field(_Metrics("number", label="a mapping of metric names to numbers"), {},
                     "Numbers measured when it was made (training loss, size).", {"eval_loss": 1.84}),
    "note": Field(_TEXT, None, "Why it exists, in a sentence.", "gitops train (120 steps)"),
    "task_md5": Field(Scalar("str", nullable=True, rule=_md5_rule), None,
                      "md5 of the model's classification block the version was added under; predict and serve "
                      "refuse it under another.", "0f3c9a1b2d4e5f60718293a4b5c6d7e8"),
}, what="version", **_REGISTRY_WORDS)
VERSION_KEYS = tuple(VERSION_SPEC.fields)

DATASET_VERSION_SPEC = Record({
    "rows": Field(Scalar("int", minimum=0, label="a whole number"), REQUIRED, "Rows this version added.", 400),
    "total_rows": Field(Scalar("int", minimum=0, nullable=True, label="a whole number"), None,
                        "Rows in the data set up to this version.", 1200),
    "splits": Field(MapOf(Scalar("int"), label="a mapping of split names to row counts"), REQUIRED,
                    "Rows this version added to each split.", {"train": 320, "valid": 40, "test": 40}),
    "batch": Field(Scalar("str", rule=_path_rule("batch")), REQUIRED, "The batch file this version stored.",
                   "data/reviews/batch-0003.jsonl"),
    "md5": Field(Scalar("str", rule=lambda v: None if MD5_RE.fullmatch(v) else f"md5 '{shown(v)}' is not an md5"),
                 REQUIRED, "DVC's md5 of `data/` after this version.", MD5),
    "sha256": Field(Scalar("str", nullable=True, rule=lambda v: None if SHA256_RE.fullmatch(v) else
                           f"sha256 '{shown(v)}' is not a sha256 (64 hex digits)"), None,
                    "sha256 of the batch file's bytes; every reader checks each copy against it.",
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    "split_column": Field(_TEXT, None, "The input column that chose rows' splits at this ingest.", "split"),
    "normalize": Field(ListOf(Scalar("str", rule=_normalize_rule), label="a list of normalisation steps",
                              nullable=True), None, "The normalisation applied at this ingest.", ["strip"]),
    "source": Field(_TEXT, None, "The input file names.", "batch-3.csv"),
    "commit": Field(_TEXT, None, "The git commit of the ingest.", "0a1b2c3d4e5f"),
    "created_at": Field(_TEXT, None, "When it was ingested (UTC, ISO 8601).", "2025-01-31T12:00:00Z"),
    "author": Field(_TEXT, None, "Who ingested it (git's user).", "Ada <ada@example.com>"),
}, what="data set version", **_REGISTRY_WORDS)
DATASET_VERSION_KEYS = tuple(DATASET_VERSION_SPEC.fields)

ALIAS_SPEC = Record({
    "version": Field(Scalar("str", label="a version id like v1",
                            rule=lambda v: None if refs.is_version(v) else
                            f"version '{shown(v)}' must look like v1, v2, ..."),
                     REQUIRED, "The version the alias points at.", "v3"),
    "note": Field(_TEXT, None, "Why it points there (from `--note`).", "beats v2 on loss"),
}, what="alias", **_REGISTRY_WORDS)

MODEL_KEYS = ("name", "description", "task", "classification", "owners", "protected", "gates", "versions")
DATASET_KEYS = ("name", "description", "columns", "text_field", "key", "splits", "split_column", "normalize",
                "versions")
# model.yaml and data set files are checked by hand (below); these tables say what the checkers
# accept, for docs/reference.md (tests/test_reference.py holds them to parse_model and parse_dataset).
MODEL_REFERENCE = (
    Key("name", "string", REQUIRED, "review-autocomplete",
        "The model's name, its directory's: lower-case letters, digits, `.`, `_`, `-` (at most 64)."),
    Key("description", "string", '""', "Review autocompletion", "What the model is for (`gitops show`)."),
    Key("task", "string", "`text-generation`", CLASSIFICATION,
        "`classification` (needs `classification:`); any other word means completion."),
    Key("classification", "mapping", "none", None, "The classification task (below); only with that task."),
    Key("owners", "owner or list of owners", "`[]`", ["@acme/ml"], "Who owns the model: `@org/team`, `@user`, e-mail."),
    Key("protected", "mapping of alias to owners", "`{}`", {"production": ["@acme/mlops"]},
        "Aliases only these owners may move (CODEOWNERS and `gitops approvals`)."),
    Key("gates", "list of gates", "`[]`", None, "Bounds `gitops eval` holds the candidate to (below)."),
    Key("gates[].metric", "string", REQUIRED, "perplexity", "The metric held to the bounds (a results metric)."),
    Key("gates[].max", "number", "none", 30, "The candidate's value must be at most this."),
    Key("gates[].min", "number", "none", 0.6, "The candidate's value must be at least this."),
    Key("gates[].max_increase_pct", "number", "none", 2,
        "At most this % of the baseline's value above it (skipped without a baseline)."),
    Key("gates[].max_decrease_pct", "number", "none", 2,
        "At most this % of the baseline's value below it (skipped without a baseline)."),
    Key("versions", "mapping of version id to version", "`{}`", None,
        "The versions, appended by `gitops register`, `train`, `convert`, `prompt add` (below)."),
)
DATASET_REFERENCE = (
    Key("name", "string", REQUIRED, "reviews", "The data set's name, its file's (`reviews.yaml`)."),
    Key("description", "string", '""', "Product reviews", "What the data is (`gitops dataset show`)."),
    Key("columns", "mapping of column to type", REQUIRED, {"id": "string", "text": "string", "rating": "int"},
        "The columns and their types: " + ", ".join(COLUMN_TYPES) + "."),
    Key("text_field", "string", REQUIRED, "text", "The column holding the text a model reads."),
    Key("key", "string or list of strings", REQUIRED, ["id"], "The columns whose hash identifies and splits a row."),
    Key("splits", "mapping of split to fraction", "`{train: 0.8, valid: 0.1, test: 0.1}`",
        {"train": 0.8, "valid": 0.1, "test": 0.1}, "Each split's share of the key hash; they add up to 1."),
    Key("split_column", "string", "none", "split", "An input column naming each row's split (not stored)."),
    Key("normalize", "list of strings", "`[]`", ["html_unescape", "strip"],
        "Text normalisation before dedupe: " + ", ".join(NORMALIZE_STEPS) + "."),
    Key("versions", "mapping of version id to data set version", "`{}`", None, "One per ingest (below)."),
)


# --- model.yaml ----------------------------------------------------------------------------------

def _keys(doc: LineMap, allowed: tuple[str, ...], required: tuple[str, ...], src: str, p: Problems,
          what: str) -> None:
    for key in doc:
        if key not in allowed:
            p.add(src, doc, key, f"unknown key '{shown(key)}' in {what} (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in doc:
            p.add(src, doc, None, f"{what} is missing the required key '{shown(key)}'")


def _string(what: str, key: str) -> Check:
    return Check(lambda v: None if isinstance(v, str) else f"{what}.{key} must be a string, not {type(v).__name__}",
                 "{why}", "string", nullable=True)


_ANY = Check(lambda v: None, nullable=True)  # checked by hand below: its problems name their own lines
# Each key of model.yaml on its own; what they need of each other is parse_model's.
MODEL_SPEC = Record({
    "name": Field(_string("model", "name"), REQUIRED), "description": Field(_string("model", "description")),
    "task": Field(_string("model", "task")), **{k: Field(_ANY) for k in MODEL_KEYS[3:]},
}, what="model", not_mapping="model.yaml must be a mapping with keys: {allowed}", null_is_empty=False,
   keep_absent=False, partial=True, unknown=_REGISTRY_WORDS["unknown"], missing=_REGISTRY_WORDS["missing"])


def parse_model(doc: Any, src: str, dirname: str, p: Problems) -> Model | None:
    """``registry/<dirname>/model.yaml`` as a :class:`Model` (None, with problems in ``p``, if invalid)."""
    start = len(p)
    keys = validate(MODEL_SPEC, doc, src, p)
    if keys is None:
        return None
    name = keys.get("name") or dirname
    if name != dirname:
        p.add(src, doc, "name", f"name '{shown(name)}' does not match its directory 'registry/{shown(dirname)}'")
    if problem := refs.name_problem(dirname):
        p.add(src, doc, "name", problem)
    model = Model(name=dirname, description=keys.get("description") or "", task=keys.get("task") or "text-generation")
    if "owners" in doc:
        model.owners = owners_of(doc["owners"], doc, "owners", src, p, "owners")
    model.protected = _protected(doc.get("protected") or {}, doc, src, p)
    model.gates = _parse_gates(doc.get("gates"), doc, src, p)
    if model.task == CLASSIFICATION:
        model.classification = parse_classification(doc, src, p)
    elif "classification" in doc:
        p.add(src, doc, "classification", f"a classification block needs 'task: classification' "
              f"(task is '{shown(model.task)}')")
    versions = doc.get("versions") or {}
    if not isinstance(versions, dict):
        p.add(src, doc, "versions", "versions must map version ids (v1, v2, ...) to version records")
    else:
        model.versions = _versions(versions, src, p)
        for version in model.versions.values():
            if version.parent and refs.is_version(version.parent) and version.parent not in model.versions:
                p.add(src, versions.get(version.id), "parent",
                      f"version {version.id}: parent {version.parent} does not exist")
    return model if len(p) == start else None


def _protected(protected: Any, doc: LineMap, src: str, p: Problems) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(protected, dict):
        p.add(src, doc, "protected", "protected must map alias names to owners, e.g. production: ['@org/mlops']")
        return out
    for alias, owners in protected.items():
        if problem := refs.alias_problem(str(alias)):
            p.add(src, protected, alias, f"protected: {problem}")
        if owners in (None, "", []):
            p.add(src, protected, alias, f"protected alias '{shown(alias)}' needs at least one owner")
            continue
        out[str(alias)] = owners_of(owners, protected, alias, src, p, f"protected.{shown(alias)}")
    return out


def _versions(versions: dict[str, Any], src: str, p: Problems) -> dict[str, Version]:
    out: dict[str, Version] = {}
    for vid, record in versions.items():
        if not isinstance(vid, str) or not refs.is_version(vid):
            p.add(src, versions, vid, f"version id '{shown(vid)}' must look like v1, v2, v3 ...")
            continue
        if not isinstance(record, LineMap):
            p.add(src, versions, vid, f"version {shown(vid)} must be a mapping with format, path and md5")
            continue
        fields = validate(VERSION_SPEC, record, src, p, path=f"version {vid}")
        if fields is not None:
            out[vid] = Version(id=vid, **fields)
    return out


def _parse_gates(gates: Any, doc: LineMap, src: str, p: Problems) -> list[Gate]:
    if gates is None:
        return []
    if not isinstance(gates, list):
        p.add(src, doc, "gates", "gates must be a list like [{metric: perplexity, max_increase_pct: 2}]")
        return []
    out = []
    for gate in gates:
        if not isinstance(gate, LineMap) or not isinstance(gate.get("metric"), str):
            p.add(src, gate if isinstance(gate, LineMap) else doc, None if isinstance(gate, LineMap) else "gates",
                  "each gate needs 'metric' and one bound of: " + ", ".join(GATE_BOUNDS))
            continue
        _keys(gate, ("metric", *GATE_BOUNDS, "significant"), ("metric",), src, p, "gate")
        bounds = {k: gate[k] for k in GATE_BOUNDS if k in gate}
        if not bounds:
            p.add(src, gate, None,
                  f"gate on '{shown(gate['metric'])}' has no bound (one of {', '.join(GATE_BOUNDS)})")
        for k, v in bounds.items():
            if not is_number(v):
                p.add(src, gate, k, f"gate on '{shown(gate['metric'])}': {shown(k)} must be a number")
        significant = gate.get("significant", False)
        if not isinstance(significant, bool):
            p.add(src, gate, "significant", f"gate on '{shown(gate['metric'])}': significant must be true or false")
            significant = False
        elif significant and not any(k.endswith("_pct") for k in bounds):
            p.add(src, gate, "significant", f"gate on '{shown(gate['metric'])}': significant: true judges a change "
                  "against the baseline, so it needs max_increase_pct or max_decrease_pct")
        out.append(Gate(metric=gate["metric"], significant=significant,
                        **{k: float(v) for k, v in bounds.items() if is_number(v)}))
    return out


# --- aliases/<alias>.yaml ------------------------------------------------------------------------

def parse_alias(doc: Any, src: str, name: str, p: Problems) -> Alias | None:
    if problem := refs.alias_problem(name):
        p.add(src, None, None, problem)
        return None
    if not isinstance(doc, LineMap):
        p.add(src, None, None, "an alias file must be a mapping with 'version' (and optionally 'note')")
        return None
    fields = validate(ALIAS_SPEC, doc, src, p, path=f"alias '{shown(name)}'")
    return Alias(name=name, **fields) if fields is not None else None


# --- datasets/<name>.yaml ------------------------------------------------------------------------

def _splits_problem(splits: Any) -> str | None:
    if (not isinstance(splits, dict) or not splits or not all(is_number(v) and v >= 0 for v in splits.values())
            or abs(sum(splits.values()) - 1.0) > 1e-6):
        return "splits must map split names to fractions that add up to 1"
    return None


def _normalize_problems(value: Any) -> str | list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"normalize must be a list of steps ({', '.join(NORMALIZE_STEPS)})"
    return [why for step in value if (why := _normalize_rule(step))]


# Each key of a data set file on its own; what they need of each other is parse_dataset's.
DATASET_SPEC = Record({
    "name": Field(_string("data set", "name"), REQUIRED),
    "description": Field(_string("data set", "description")),
    "columns": Field(_ANY, REQUIRED),
    "text_field": Field(_string("data set", "text_field"), REQUIRED),
    "key": Field(Check(lambda v: None if isinstance(v, str) or (isinstance(v, list) and v and all(
        isinstance(k, str) for k in v)) else "key must be a column name or a list of column names", "{why}",
        convert=lambda v: [v] if isinstance(v, str) else list(v)), REQUIRED),
    "splits": Field(Check(_splits_problem, "{why}", convert=lambda v: {str(k): float(x) for k, x in v.items()})),
    "split_column": Field(Check(lambda v: None if isinstance(v, str) and v.strip() else "split_column must be the "
                                "name of the input column that holds each row's split", "{why}", nullable=True)),
    "normalize": Field(Check(_normalize_problems, "{why}", nullable=True, convert=list)),
    "versions": Field(_ANY),
}, what="data set", unknown="unknown key '{key}' in {record} (allowed: {allowed})",
   missing="{record} is missing the required key '{key}'", not_mapping="a data set file must be a mapping with keys: "
   "{allowed}", null_is_empty=False, keep_absent=False, partial=True)


def parse_dataset(doc: Any, src: str, stem: str, p: Problems) -> Dataset | None:
    """``registry/datasets/<stem>.yaml`` as a :class:`Dataset` (None, with problems in ``p``, if invalid)."""
    start = len(p)
    keys = validate(DATASET_SPEC, doc, src, p)
    if keys is None:
        return None
    name = keys.get("name")
    if name is not None and name != stem:
        p.add(src, doc, "name", f"name '{shown(name)}' does not match the file name '{shown(stem)}.yaml'")
    if problem := refs.name_problem(stem, "data set"):
        p.add(src, doc, "name", problem)
    columns = _columns(doc, src, p)
    text_field = keys.get("text_field")
    if text_field is None and "text_field" in doc:  # `text_field:` with nothing after it
        p.add(src, doc, "text_field", "text_field must name one of the columns (the text a model reads), not null")
    elif text_field is not None and columns and text_field not in columns:
        p.add(src, doc, "text_field", f"text_field '{shown(text_field)}' is not one of the columns")
    key = keys.get("key", [])
    for k in key:
        if columns and k not in columns:
            p.add(src, doc, "key", f"key column '{shown(k)}' is not one of the columns")
    if dup := next((k for i, k in enumerate(key) if k in key[:i]), None):
        p.add(src, doc, "key", f"key lists the column '{shown(dup)}' twice")
    if (split_column := keys.get("split_column")) is not None and split_column in columns:
        p.add(src, doc, "split_column", f"split_column '{split_column}' must not be one of the columns: it is read "
              "at ingest to choose each row's split, not stored as data")
    versions = _dataset_versions(doc, src, p)
    if len(p) != start:
        return None
    return Dataset(name=stem, description=keys.get("description") or "",
                   columns={str(k): v for k, v in columns.items()},
                   text_field=text_field, key=key, splits=keys.get("splits", dict(DEFAULT_SPLITS)),
                   versions=versions, split_column=split_column, normalize=keys.get("normalize") or [])


def _columns(doc: LineMap, src: str, p: Problems) -> dict:
    columns = doc.get("columns")
    if not isinstance(columns, dict) or not columns:
        p.add(src, doc, "columns", f"columns must map column names to types ({', '.join(COLUMN_TYPES)})")
        return {}
    for col, typ in columns.items():
        if typ not in COLUMN_TYPES:
            p.add(src, columns, col,
                  f"column '{shown(col)}': type '{shown(typ)}' is not one of {', '.join(COLUMN_TYPES)}")
        if col == SPLIT_KEY:
            p.add(src, columns, col, f"column '{SPLIT_KEY}' is reserved: every stored row carries its split "
                  f"there (to take each row's split from an input column, name it in split_column instead)")
    return columns


def _dataset_versions(doc: LineMap, src: str, p: Problems) -> dict[str, DatasetVersion]:
    versions = doc.get("versions") or {}
    out: dict[str, DatasetVersion] = {}
    if not isinstance(versions, dict):
        p.add(src, doc, "versions", "versions must map version ids (v1, v2, ...) to records")
        return out
    for vid, record in versions.items():
        if not isinstance(vid, str) or not refs.is_version(vid):
            p.add(src, versions, vid, f"data set version id '{shown(vid)}' must look like v1, v2, ...")
            continue
        if not isinstance(record, LineMap):
            p.add(src, versions, vid, f"data set version {shown(vid)} must be a mapping")
            continue
        fields = validate(DATASET_VERSION_SPEC, record, src, p, path=f"data set version {vid}")
        if fields is not None:
            out[vid] = dataset_version(vid, fields)
    return out


def dataset_version(vid: str, fields: dict[str, Any]) -> DatasetVersion:
    """A :class:`DatasetVersion` from its conformed record (empty strings for absent text)."""
    return DatasetVersion(id=vid, rows=fields["rows"], splits=dict(fields["splits"]), batch=fields["batch"],
                          md5=fields["md5"], total_rows=fields.get("total_rows"),
                          source=fields.get("source") or "", commit=fields.get("commit"),
                          created_at=fields.get("created_at") or "", author=fields.get("author") or "",
                          split_column=fields.get("split_column"), normalize=fields.get("normalize"),
                          sha256=fields.get("sha256"))


MAX_NOTE = 2000  # characters of a version's or an alias's note


def note_problem(note: object) -> str | None:
    """Why ``note`` (``--note`` of register, alias set, prompt add) cannot be stored, or None: it
    must be text YAML and git can carry (no lone surrogate, no control character but newline and
    tab) and at most :data:`MAX_NOTE` characters."""
    if note is None:
        return None
    if not isinstance(note, str):
        return "the note must be text"
    if len(note) > MAX_NOTE:
        return f"the note has {len(note):,} characters; at most {MAX_NOTE}"
    if bad := next((c for c in note if 0xD800 <= ord(c) <= 0xDFFF), None):
        return f"the note holds {bad!a}, which is not Unicode text (a lone surrogate, or bytes that are not UTF-8)"
    if bad := next((c for c in note if not c.isprintable() and c not in "\n\t"), None):
        return f"the note holds the control character {bad!a}"
    return None
