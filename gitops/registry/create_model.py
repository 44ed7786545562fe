"""``gitops model create``: a new ``registry/NAME/model.yaml``, with CODEOWNERS kept in sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.core import layout, refs, schema
from gitops.core.schema import Model
from gitops.core.workspace import Workspace
from gitops.errors import NotFoundError, RegistryError
from gitops.registry import codeowners_text
from gitops.validation import Problems

# A classification model's gate unless it declares its own: a candidate whose accuracy is
# significantly worse than the baseline's (the paired interval of the change all below 0) fails.
DEFAULT_CLASSIFICATION_GATES = [{"metric": "accuracy", "max_decrease_pct": 0, "significant": True}]


def create_model(ws: Workspace, name: str, *, description: str = "", task: str = "text-generation",
                 owners: list[str] | None = None, protect: dict[str, list[str]] | None = None,
                 gates: list[dict[str, Any]] | None = None,
                 classification: dict[str, Any] | Path | None = None) -> Model:
    """Add ``registry/NAME/model.yaml`` (and keep CODEOWNERS in sync with its protected aliases).
    ``classification`` is the block a ``task: classification`` model needs (gitops.core.task), or
    a YAML file holding it. A classification model without ``gates`` gets
    :data:`DEFAULT_CLASSIFICATION_GATES` (accuracy not significantly worse than the baseline)."""
    if problem := refs.name_problem(name):
        raise RegistryError(problem)
    rel = layout.model_file(name)
    header: dict[str, Any] = {"name": name, "description": description, "task": task, "owners": owners or []}
    if protect:
        header["protected"] = protect
    if not gates and task == "classification":
        gates = [dict(g) for g in DEFAULT_CLASSIFICATION_GATES]
    if gates:
        header["gates"] = gates
    if isinstance(classification, Path):
        classification = read_classification(classification)
    if classification is not None:
        header["classification"] = classification
    text = yamlio.dumps(header) + "versions:\n"
    problems = Problems()
    model = schema.parse_model(yamlio.loads(text, rel), rel, name, problems)
    if model is None:  # the problems' lines are those of text never written: give the messages only
        raise RegistryError(problems[0].message, problems=problems if len(problems) > 1 else None)
    with ws.writing("model create"):  # first settle a killed command (its model.yaml may be half made)
        ws.git.require_clean("create a model")
        reg = ws.registry()
        if name in reg.models or (ws.root / rel).exists():
            raise RegistryError(f"model '{name}' already exists ({rel})")
        paths = [rel, codeowners_text.CODEOWNERS]
        folder = ws.root / layout.REGISTRY / name
        with ws.transaction(paths, [] if folder.exists() else [folder], f"model create {name}"):
            yamlio.write_atomic(ws.root / rel, text)
            owners_text = codeowners_text.render(type(reg)(models={**reg.models, name: model}),
                                                 ws.settings.admins, ws.settings.admin_paths)
            yamlio.write_atomic(ws.root / codeowners_text.CODEOWNERS, owners_text)
            ws.commit(paths, f"model {name}: create")
    return model


MAX_TASK_BYTES = 256 * 1024  # a classification block is a template, a label list and a few rules


def read_classification(path: Path) -> dict[str, Any]:
    """The classification block in a YAML file (a mapping), as plain data for :func:`create_model`."""
    if not path.is_file():
        raise NotFoundError(f"classification file {path} does not exist")
    try:
        doc = yamlio.load_file(path, max_bytes=MAX_TASK_BYTES)
    except yamlio.YamlError as exc:
        raise RegistryError(str(exc)) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{path}: the classification block must be a mapping with input, label, labels "
                            "and fallback")
    return yamlio.plain(doc)
