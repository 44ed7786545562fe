"""The registry's records: a model, its versions, gates and aliases, a data set and its versions.

Plain dataclasses, built by :mod:`gitops.core.schema` from the files people edit (after validation)
and by the content cache from its plain data; everything above the core reads the registry as these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitops.core import refs
from gitops.core.task import ClassificationTask
from gitops.errors import IntegrityError

DEFAULT_SPLITS = {"train": 0.8, "valid": 0.1, "test": 0.1}
GATE_BOUNDS = ("max", "min", "max_increase_pct", "max_decrease_pct")


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
    metrics: dict[str, float | None] = field(default_factory=dict)
    note: str | None = None
    base_md5: str | None = None  # the md5 of the base version a peft-lora adapter was trained on
    # The md5 of the model's classification block when the version was added (ClassificationTask.md5):
    # it runs with that block or not at all. None for completion models and older versions.
    task_md5: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "path": self.path, "md5": self.md5}
        for key in ("quantization", "parent", "base_model", "base_md5", "dataset", "task_md5", "config_hash",
                    "config", "commit", "created_at", "author", "note"):
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
    significant: bool = False   # relative bounds judged on the change's interval, not its point value

    def to_dict(self) -> dict[str, Any]:
        out = {"metric": self.metric, **{k: getattr(self, k) for k in GATE_BOUNDS if getattr(self, k) is not None}}
        if self.significant:
            out["significant"] = True
        return out


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
    # ``task: classification`` only: the input template, label column, vocabulary and extraction
    # rules every variant of the model is scored with (gitops.core.task).
    classification: ClassificationTask | None = None

    def latest(self) -> Version | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=refs.version_number)]

    def task_md5(self) -> str | None:
        """What a version added now records as ``task_md5`` (None: no classification block)."""
        return self.classification.md5() if self.classification else None

    def task_for(self, version: Version) -> ClassificationTask | None:
        """The classification block ``version`` runs with: the model's, provided it is the block the
        version was added with (``task_md5``; versions added before it was recorded take the current
        one). IntegrityError otherwise: its labels, template and extraction were never evaluated."""
        current = self.task_md5()
        if version.task_md5 and version.task_md5 != current:
            now = f"md5 {current}" if current else "none"
            raise IntegrityError(
                f"{self.name}@{version.id} was added with another classification block (md5 {version.task_md5}; "
                f"model.yaml's is now {now}): it is never run with rules it was not evaluated with; add it again "
                "as a new version (gitops prompt add / gitops register), or restore the block")
        return self.classification

    def next_version_id(self) -> str:
        return f"v{max((refs.version_number(v) for v in self.versions), default=0) + 1}"

    def header_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "task": self.task,
                               "owners": list(self.owners)}
        if self.protected:
            out["protected"] = {k: list(v) for k, v in self.protected.items()}
        if self.gates:
            out["gates"] = [g.to_dict() for g in self.gates]
        if self.classification:
            out["classification"] = self.classification.to_dict()
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
    # How the rows were prepared, as the data set said when they were ingested (None: not used).
    split_column: str | None = None
    normalize: list[str] | None = None
    # The sha256 of the batch file, in full (its name carries the first 10 hex digits): every reader
    # checks the bytes against it before use. None in versions ingested before it was recorded.
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rows": self.rows, "splits": dict(self.splits), "batch": self.batch, "md5": self.md5}
        if self.sha256:
            out["sha256"] = self.sha256
        for key in ("total_rows", "split_column", "normalize", "source", "commit", "created_at", "author"):
            value = getattr(self, key)
            if value not in (None, "", []):
                out[key] = list(value) if isinstance(value, list) else value
        return out


@dataclass
class Dataset:
    name: str
    columns: dict[str, str]
    text_field: str
    key: list[str]
    splits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    description: str = ""
    versions: dict[str, DatasetVersion] = field(default_factory=dict)
    # An input column naming each row's split (the team's own holdout); rows without a value fall
    # back to the key hash. Not one of ``columns``: it is consumed at ingest.
    split_column: str | None = None
    normalize: list[str] = field(default_factory=list)  # NORMALIZE_STEPS, in the order applied

    def latest(self) -> DatasetVersion | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=refs.version_number)]

    def header_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "columns": dict(self.columns),
                               "text_field": self.text_field, "key": list(self.key), "splits": dict(self.splits)}
        if self.split_column:
            out["split_column"] = self.split_column
        if self.normalize:
            out["normalize"] = list(self.normalize)
        return out
