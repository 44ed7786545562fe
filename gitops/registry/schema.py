"""Validated shapes of the files people edit under ``registry/``.

Each ``parse_*`` function takes a loaded YAML document and returns a dataclass, or records every
problem it finds in a :class:`Problems` list as ``file:line: key: what is wrong`` and returns None.
No schema library: the loader is on the hot path of ``gitops show`` and the messages matter more
than the machinery.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gitops.registry import refs
from gitops.yamlio import LineMap, plain

FORMATS = ("peft-lora", "hf", "ct2", "prompt")
QUANTIZATIONS = ("int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
COLUMN_TYPES = ("string", "int", "float", "bool")
OWNER_RE = re.compile(r"^(@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9._-]+)?|[^@\s]+@[^@\s]+\.[^@\s]+)$")
MD5_RE = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
GATE_BOUNDS = ("max", "min", "max_increase_pct", "max_decrease_pct")


class Problems(list):
    """Problems found while validating; each is one sentence naming file, line and key."""

    def add(self, source: str, node: Any, key: Any, message: str) -> None:
        line = None
        if isinstance(node, LineMap):
            line = node.key_lines.get(key, node.line) if key is not None else node.line
        where = f"{source}:{line}" if line else source
        self.append(f"{where}: {message}")


@dataclass
class Version:
    id: str
    format: str
    path: str
    md5: str
    created_at: str = ""
    author: str = ""
    commit: str | None = None
    parent: str | None = None
    base_model: str | None = None
    dataset: str | None = None
    quantization: str | None = None
    config: dict[str, Any] | None = None
    config_hash: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "path": self.path, "md5": self.md5}
        for key in ("quantization", "parent", "base_model", "dataset", "config_hash", "config", "commit",
                    "created_at", "author", "note"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        return out


@dataclass
class Gate:
    metric: str
    max: float | None = None
    min: float | None = None
    max_increase_pct: float | None = None
    max_decrease_pct: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, **{k: getattr(self, k) for k in GATE_BOUNDS if getattr(self, k) is not None}}


@dataclass
class Alias:
    name: str
    version: str
    note: str | None = None


@dataclass
class Model:
    name: str
    description: str = ""
    task: str = "text-generation"
    owners: list[str] = field(default_factory=list)
    protected: dict[str, list[str]] = field(default_factory=dict)
    gates: list[Gate] = field(default_factory=list)
    versions: dict[str, Version] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)

    def latest(self) -> Version | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=refs.version_number)]

    def next_version_id(self) -> str:
        return f"v{max((refs.version_number(v) for v in self.versions), default=0) + 1}"

    def header_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "task": self.task,
                               "owners": list(self.owners)}
        if self.protected:
            out["protected"] = {k: list(v) for k, v in self.protected.items()}
        if self.gates:
            out["gates"] = [g.to_dict() for g in self.gates]
        return out


@dataclass
class DatasetVersion:
    id: str
    rows: int
    splits: dict[str, int]
    batch: str
    md5: str
    source: str = ""
    commit: str | None = None
    created_at: str = ""
    author: str = ""
    total_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rows": self.rows, "splits": dict(self.splits), "batch": self.batch, "md5": self.md5}
        for key in ("total_rows", "source", "commit", "created_at", "author"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        return out


@dataclass
class Dataset:
    name: str
    columns: dict[str, str]
    text_field: str
    key: list[str]
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1})
    description: str = ""
    versions: dict[str, DatasetVersion] = field(default_factory=dict)

    def latest(self) -> DatasetVersion | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=refs.version_number)]

    def header_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "columns": dict(self.columns),
                "text_field": self.text_field, "key": list(self.key), "splits": dict(self.splits)}


# --- small typed getters -------------------------------------------------------------------------

def _keys(doc: LineMap, allowed: tuple[str, ...], required: tuple[str, ...], src: str, p: Problems,
          what: str) -> bool:
    ok = True
    for key in doc:
        if key not in allowed:
            p.add(src, doc, key, f"unknown key '{key}' in {what} (allowed: {', '.join(allowed)})")
            ok = False
    for key in required:
        if key not in doc:
            p.add(src, doc, None, f"{what} is missing the required key '{key}'")
            ok = False
    return ok


def _str(doc: LineMap, key: str, src: str, p: Problems, what: str, optional: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        p.add(src, doc, key, f"{what}.{key} must be a string, not {type(value).__name__}")
        return None
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _owners(value: Any, doc: LineMap, key: str, src: str, p: Problems, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        p.add(src, doc, key, f"{what} must be a list of owners like '@org/team', '@user' or an e-mail")
        return []
    bad = [o for o in value if not OWNER_RE.match(o)]
    for o in bad:
        p.add(src, doc, key, f"{what}: '{o}' is not an owner ('@org/team', '@user' or an e-mail)")
    return [o for o in value if o not in bad]


def safe_relpath(path: str) -> str | None:
    """Why ``path`` may not be used as a repository path, or None when it is a plain relative path."""
    if not path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return f"'{path}' must be a path relative to the repository"
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if ".." in parts:
        return f"'{path}' escapes the repository ('..' is not allowed)"
    return None


# --- model.yaml ----------------------------------------------------------------------------------

MODEL_KEYS = ("name", "description", "task", "owners", "protected", "gates", "versions")
VERSION_KEYS = ("format", "path", "md5", "quantization", "parent", "base_model", "dataset", "config",
                "config_hash", "commit", "created_at", "author", "metrics", "note")


def parse_model(doc: Any, src: str, dirname: str, p: Problems) -> Model | None:
    start = len(p)
    if not isinstance(doc, LineMap):
        p.add(src, None, None, "model.yaml must be a mapping with keys: " + ", ".join(MODEL_KEYS))
        return None
    _keys(doc, MODEL_KEYS, ("name",), src, p, "model")
    name = _str(doc, "name", src, p, "model") or dirname
    if name != dirname:
        p.add(src, doc, "name", f"name '{name}' does not match its directory 'registry/{dirname}'")
    if problem := refs.name_problem(dirname):
        p.add(src, doc, "name", problem)
    model = Model(name=dirname, description=_str(doc, "description", src, p, "model") or "",
                  task=_str(doc, "task", src, p, "model") or "text-generation")
    if "owners" in doc:
        model.owners = _owners(doc["owners"], doc, "owners", src, p, "owners")
    protected = doc.get("protected") or {}
    if not isinstance(protected, dict):
        p.add(src, doc, "protected", "protected must map alias names to owners, e.g. production: ['@org/mlops']")
    else:
        for alias, owners in protected.items():
            if problem := refs.alias_problem(str(alias)):
                p.add(src, protected, alias, f"protected: {problem}")
            if owners in (None, "", []):
                p.add(src, protected, alias, f"protected alias '{alias}' needs at least one owner")
                continue
            model.protected[str(alias)] = _owners(owners, protected, alias, src, p, f"protected.{alias}")
    model.gates = _parse_gates(doc.get("gates"), doc, src, p)
    versions = doc.get("versions") or {}
    if not isinstance(versions, dict):
        p.add(src, doc, "versions", "versions must map version ids (v1, v2, ...) to version records")
    else:
        for vid, record in versions.items():
            version = parse_version(vid, record, versions, src, p)
            if version is not None:
                model.versions[version.id] = version
        for version in model.versions.values():
            if version.parent and refs.is_version(version.parent) and version.parent not in model.versions:
                p.add(src, versions.get(version.id), "parent",
                      f"version {version.id}: parent {version.parent} does not exist")
    return model if len(p) == start else None


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
        _keys(gate, ("metric", *GATE_BOUNDS), ("metric",), src, p, "gate")
        bounds = {k: gate[k] for k in GATE_BOUNDS if k in gate}
        if not bounds:
            p.add(src, gate, None, f"gate on '{gate['metric']}' has no bound (one of {', '.join(GATE_BOUNDS)})")
        for k, v in bounds.items():
            if not _number(v):
                p.add(src, gate, k, f"gate on '{gate['metric']}': {k} must be a number")
        out.append(Gate(metric=gate["metric"], **{k: float(v) for k, v in bounds.items() if _number(v)}))
    return out


def parse_version(vid: Any, record: Any, parent_doc: LineMap, src: str, p: Problems) -> Version | None:
    start = len(p)
    if not isinstance(vid, str) or not refs.is_version(vid):
        p.add(src, parent_doc, vid, f"version id '{vid}' must look like v1, v2, v3 ...")
        return None
    if not isinstance(record, LineMap):
        p.add(src, parent_doc, vid, f"version {vid} must be a mapping with format, path and md5")
        return None
    what = f"version {vid}"
    _keys(record, VERSION_KEYS, ("format", "path", "md5"), src, p, what)
    fmt = _str(record, "format", src, p, what)
    if fmt is not None and fmt not in FORMATS:
        p.add(src, record, "format", f"{what}: format '{fmt}' is not one of {', '.join(FORMATS)}")
    path = _str(record, "path", src, p, what)
    if path is not None and (problem := safe_relpath(path)):
        p.add(src, record, "path", f"{what}: path {problem}")
    md5 = _str(record, "md5", src, p, what)
    if md5 is not None and not MD5_RE.match(md5):
        p.add(src, record, "md5", f"{what}: md5 '{md5}' is not an md5 (32 hex digits, '.dir' for directories)")
    quant = _str(record, "quantization", src, p, what)
    if quant is not None and quant not in QUANTIZATIONS:
        p.add(src, record, "quantization", f"{what}: quantization '{quant}' is not one of {', '.join(QUANTIZATIONS)}")
    parent = record.get("parent")
    if parent is not None and (not isinstance(parent, str) or not refs.is_version(parent)):
        p.add(src, record, "parent", f"{what}: parent must be a version id like v1")
    metrics = record.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(isinstance(k, str) and _number(v) for k, v in metrics.items()):
        p.add(src, record, "metrics", f"{what}: metrics must map names to numbers")
        metrics = {}
    config = record.get("config")
    if config is not None and not isinstance(config, dict):
        p.add(src, record, "config", f"{what}: config must be a mapping")
    strings = {k: _str(record, k, src, p, what) for k in
               ("base_model", "dataset", "config_hash", "commit", "created_at", "author", "note")}
    if len(p) != start:
        return None
    return Version(id=vid, format=fmt, path=path, md5=md5, quantization=quant, parent=parent,
                   metrics={k: float(v) if isinstance(v, float) else v for k, v in metrics.items()},
                   config=plain(config), **strings)


# --- aliases/<alias>.yaml ------------------------------------------------------------------------

def parse_alias(doc: Any, src: str, name: str, p: Problems) -> Alias | None:
    start = len(p)
    if problem := refs.alias_problem(name):
        p.add(src, None, None, problem)
        return None
    if not isinstance(doc, LineMap):
        p.add(src, None, None, "an alias file must be a mapping with 'version' (and optionally 'note')")
        return None
    _keys(doc, ("version", "note"), ("version",), src, p, f"alias '{name}'")
    version = doc.get("version")
    if "version" in doc and (not isinstance(version, str) or not refs.is_version(version)):
        p.add(src, doc, "version", f"alias '{name}': version '{version}' must look like v1, v2, ...")
    note = _str(doc, "note", src, p, f"alias '{name}'")
    return Alias(name=name, version=version, note=note) if len(p) == start else None


# --- datasets/<name>.yaml ------------------------------------------------------------------------

DATASET_KEYS = ("name", "description", "columns", "text_field", "key", "splits", "versions")
DATASET_VERSION_KEYS = ("rows", "total_rows", "splits", "batch", "md5", "source", "commit", "created_at",
                        "author")


def parse_dataset(doc: Any, src: str, stem: str, p: Problems) -> Dataset | None:
    start = len(p)
    if not isinstance(doc, LineMap):
        p.add(src, None, None, "a data set file must be a mapping with keys: " + ", ".join(DATASET_KEYS))
        return None
    _keys(doc, DATASET_KEYS, ("name", "columns", "text_field", "key"), src, p, "data set")
    name = _str(doc, "name", src, p, "data set")
    if name is not None and name != stem:
        p.add(src, doc, "name", f"name '{name}' does not match the file name '{stem}.yaml'")
    if problem := refs.name_problem(stem, "data set"):
        p.add(src, doc, "name", problem)
    columns = doc.get("columns")
    if not isinstance(columns, dict) or not columns:
        p.add(src, doc, "columns", f"columns must map column names to types ({', '.join(COLUMN_TYPES)})")
        columns = {}
    for col, typ in columns.items():
        if typ not in COLUMN_TYPES:
            p.add(src, columns, col, f"column '{col}': type '{typ}' is not one of {', '.join(COLUMN_TYPES)}")
    text_field = _str(doc, "text_field", src, p, "data set")
    if text_field is not None and columns and text_field not in columns:
        p.add(src, doc, "text_field", f"text_field '{text_field}' is not one of the columns")
    key = doc.get("key")
    key = [key] if isinstance(key, str) else key
    if "key" in doc and (not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key)):
        p.add(src, doc, "key", "key must be a column name or a list of column names")
        key = []
    for k in key or []:
        if columns and k not in columns:
            p.add(src, doc, "key", f"key column '{k}' is not one of the columns")
    splits = doc.get("splits", {"train": 0.8, "valid": 0.1, "test": 0.1})
    if (not isinstance(splits, dict) or not splits or not all(_number(v) and v >= 0 for v in splits.values())
            or abs(sum(splits.values()) - 1.0) > 1e-6):
        p.add(src, doc, "splits", "splits must map split names to fractions that add up to 1")
        splits = {}
    versions = doc.get("versions") or {}
    parsed: dict[str, DatasetVersion] = {}
    if not isinstance(versions, dict):
        p.add(src, doc, "versions", "versions must map version ids (v1, v2, ...) to records")
    else:
        for vid, record in versions.items():
            if (v := _parse_dataset_version(vid, record, versions, src, p)) is not None:
                parsed[vid] = v
    if len(p) != start:
        return None
    return Dataset(name=stem, description=_str(doc, "description", src, p, "data set") or "",
                   columns={str(k): v for k, v in columns.items()}, text_field=text_field, key=list(key),
                   splits={str(k): float(v) for k, v in splits.items()}, versions=parsed)


def _parse_dataset_version(vid: Any, record: Any, parent_doc: LineMap, src: str, p: Problems
                           ) -> DatasetVersion | None:
    start = len(p)
    if not isinstance(vid, str) or not refs.is_version(vid):
        p.add(src, parent_doc, vid, f"data set version id '{vid}' must look like v1, v2, ...")
        return None
    if not isinstance(record, LineMap):
        p.add(src, parent_doc, vid, f"data set version {vid} must be a mapping")
        return None
    what = f"data set version {vid}"
    _keys(record, DATASET_VERSION_KEYS, ("rows", "splits", "batch", "md5"), src, p, what)
    for k in ("rows", "total_rows"):
        if k in record and (not isinstance(record[k], int) or isinstance(record[k], bool) or record[k] < 0):
            p.add(src, record, k, f"{what}: {k} must be a whole number")
    splits = record.get("splits")
    if "splits" in record and (not isinstance(splits, dict) or not all(isinstance(v, int) for v in splits.values())):
        p.add(src, record, "splits", f"{what}: splits must map split names to row counts")
    batch = _str(record, "batch", src, p, what)
    if batch is not None and (problem := safe_relpath(batch)):
        p.add(src, record, "batch", f"{what}: batch {problem}")
    md5 = _str(record, "md5", src, p, what)
    if md5 is not None and not MD5_RE.match(md5):
        p.add(src, record, "md5", f"{what}: md5 '{md5}' is not an md5")
    strings = {k: _str(record, k, src, p, what) for k in ("source", "commit", "created_at", "author")}
    if len(p) != start:
        return None
    return DatasetVersion(id=vid, rows=record["rows"], splits=dict(splits), batch=batch, md5=md5,
                          total_rows=record.get("total_rows"), **{k: v or "" if k != "commit" else v
                                                                  for k, v in strings.items()})
