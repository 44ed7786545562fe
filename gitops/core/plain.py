"""The registry's records as plain data, the form the content cache (:mod:`gitops.core.cache`) stores:
a model or data set as its header plus each version's fields in the dataclass's order, rebuilt
positionally."""

from __future__ import annotations

import dataclasses
from typing import Any

from gitops.core.records import Dataset, DatasetVersion, Gate, Model, Version
from gitops.core.task import ClassificationTask

# A version's fields after ``id``, in the dataclass's order: the cache stores each version as this
# list (half the JSON of a mapping, and rebuilt positionally: a thousand versions in about a ms).
_VERSION_ORDER = tuple(f.name for f in dataclasses.fields(Version))[1:]
_DATASET_VERSION_ORDER = tuple(f.name for f in dataclasses.fields(DatasetVersion))[1:]


def model_to_plain(model: Model) -> dict[str, Any]:
    """Plain data of a validated model (aliases excluded: they live in their own files)."""
    return {"header": {**model.header_dict(), "gates": [g.to_dict() for g in model.gates]},
            "versions": {vid: version_fields(v) for vid, v in model.versions.items()}}


def version_fields(version: Version) -> list[Any]:
    """A version's fields after ``id``, as plain data (``Version(id, *fields)`` rebuilds it)."""
    return [getattr(version, k) for k in _VERSION_ORDER]


def model_from_plain(data: dict[str, Any]) -> Model:
    h = data["header"]
    return Model(name=h["name"], description=h["description"], task=h["task"], owners=list(h["owners"]),
                 protected={k: list(v) for k, v in h.get("protected", {}).items()},
                 gates=[Gate(**g) for g in h.get("gates", [])],
                 classification=ClassificationTask.from_dict(h["classification"]) if h.get("classification")
                 else None,
                 versions={vid: Version(vid, *f) for vid, f in data["versions"].items()})


def dataset_to_plain(dataset: Dataset) -> dict[str, Any]:
    return {"header": dataset.header_dict(),
            "versions": {vid: dataset_version_fields(v) for vid, v in dataset.versions.items()}}


def dataset_version_fields(version: DatasetVersion) -> list[Any]:
    """A data set version's fields after ``id``, as plain data (``DatasetVersion(id, *fields)``)."""
    return [getattr(version, k) for k in _DATASET_VERSION_ORDER]


def dataset_from_plain(data: dict[str, Any]) -> Dataset:
    h = data["header"]
    return Dataset(name=h["name"], description=h["description"], columns=dict(h["columns"]),
                   text_field=h["text_field"], key=list(h["key"]), splits=dict(h["splits"]),
                   versions={vid: DatasetVersion(vid, *f) for vid, f in data["versions"].items()},
                   split_column=h.get("split_column"), normalize=list(h.get("normalize", [])))
