"""``gitops show``: the registry, one model, or one version, as plain data."""

from __future__ import annotations

from typing import Any

from gitops.core import refs
from gitops.core.schema import Dataset, Model, Version
from gitops.core.workspace import Workspace


def show(ws: Workspace, target: str | None = None) -> dict[str, Any]:
    """The registry (no target), one model (``MODEL``) or one version (``MODEL@REF``) as plain data."""
    reg = ws.registry()
    if target is None:
        return {"models": [model_summary(m) for _, m in sorted(reg.models.items())],
                "datasets": [dataset_summary(d) for _, d in sorted(reg.datasets.items())]}
    ref = refs.parse_ref(target)
    if ref.ref is None:
        model = reg.model(ref.name)
        return {**model_summary(model),
                "versions": [version_row(model, v) for v in
                             sorted(model.versions.values(), key=lambda v: refs.version_number(v.id))]}
    model, version = reg.resolve(ref)
    return {"model": model.name, "id": version.id, **version.to_dict(),
            "aliases": sorted(a for a, al in model.aliases.items() if al.version == version.id)}


def model_summary(model: Model) -> dict[str, Any]:
    latest = model.latest()
    return {"name": model.name, "description": model.description, "task": model.task,
            "owners": model.owners, "versions_count": len(model.versions),
            "latest": latest.id if latest else None,
            "aliases": {a: al.version for a, al in sorted(model.aliases.items())},
            "protected": dict(sorted(model.protected.items())),
            **({"classification": model.classification.to_dict()} if model.classification else {})}


def version_row(model: Model, v: Version) -> dict[str, Any]:
    return {"id": v.id, "format": v.format, "quantization": v.quantization, "parent": v.parent,
            "base_model": v.base_model, "dataset": v.dataset, "created_at": v.created_at, "author": v.author,
            "metrics": v.metrics,
            "aliases": sorted(a for a, al in model.aliases.items() if al.version == v.id)}


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    latest = ds.latest()
    return {"name": ds.name, "versions_count": len(ds.versions), "latest": latest.id if latest else None,
            "rows": sum(v.rows for v in ds.versions.values())}
