"""Head versions as variants: a classification head on a frozen, pinned base (``gitops train`` with
``adapter: {type: head}``; :mod:`gitops.train.head_train` trains them, :mod:`gitops.ml.classhead` holds the head).

A head version runs on its base as a prompt version does, but answers with one forward pass of the
base per batch: the row rendered by the model's task input template (no instruction, no examples),
its pooled hidden state through the head, a probability per label. The prediction is the likeliest
label (a tie goes to the first in task order), so it is always a label: ``matched`` is true, the
invalid rate 0, ``raw_output`` the label, ``completion_tokens`` 0.

Before a head runs, its pins are checked: the registry's md5 for the base version must still be the
one the head was trained on (``base_md5``), and the model's task (input template, labels) must be the
one the head learned (``head.json`` records the template's md5 and the labels).
"""

from __future__ import annotations

from typing import Any

from gitops.core import refs
from gitops.core.materialize import has_adapter, loadable
from gitops.core.reader import Registry
from gitops.core.schema import Model, Version
from gitops.core.task import ClassificationTask
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, IntegrityError, NotFoundError

HEAD = "head"
BASE_FORMATS = ("hf", "peft-lora")  # what a head runs on (a pinned peft-lora version merged first)


def is_head(version: Version) -> bool:
    return version.format == HEAD


def pinned_base(registry: Registry, model: Model, version: Version) -> tuple[Model, Version]:
    """The model and version a head version runs on; refused when the registry lacks it or its md5
    is no longer the one the head was trained on."""
    label = f"{model.name}@{version.id}"
    try:
        base_model, base = registry.resolve(refs.parse_ref(version.base_model or "", require_ref=True))
    except NotFoundError as exc:
        raise NotFoundError(f"{label} is a head on {version.base_model}, which the registry does not have "
                            f"({exc})") from None
    if not version.base_md5 or base.md5 != version.base_md5:
        raise IntegrityError(f"{label} is a head trained on {version.base_model} with md5 {version.base_md5}, but "
                             f"the registry now records md5 {base.md5} for it; refusing to run the head on other "
                             "weights")
    return base_model, base


def check_task(task: ClassificationTask, spec: Any, label: str) -> None:
    """Refuse a head whose learned template or labels are not the model's task any more."""
    from gitops.ml.embcache import template_md5

    if spec.template_md5 != template_md5(task.input):
        raise ConfigError(f"{label} was trained on the input template {spec.template!r}; the model's task input is "
                          f"now {task.input!r}, which the head never saw: train a new head")
    if list(spec.labels) != list(task.labels):
        raise ConfigError(f"{label} answers the labels {', '.join(spec.labels)}; the model's task now has "
                          f"{', '.join(task.labels)}: train a new head")


def load_head(ws: Workspace, model: Model, version: Version) -> tuple[Any, Any]:
    """A head version's (Head, HeadSpec) from its verified files, its pins and task checked."""
    from gitops.ml.classhead import load

    label = f"{model.name}@{version.id}"
    if model.classification is None:
        raise ConfigError(f"{label} is a head version of a model with task '{model.task}'; a head needs a "
                          "classification task")
    files = loadable(ws, model.name, version).files  # pulled through DVC, every file hashed
    head, spec = load(files)
    if spec.base_md5 != version.base_md5:
        raise IntegrityError(f"{label}: head.json names base md5 {spec.base_md5}, the registry {version.base_md5}")
    if spec.adapter != has_adapter(version) or (spec.adapter and not (files / "adapter_config.json").is_file()):
        raise ConfigError(f"{label}: head.json and the version's config disagree on whether LoRA layers were "
                          "trained with the head (or the adapter's files are missing)")
    check_task(model.classification, spec, label)
    return head, spec


def open_classifier(ws: Workspace, model: Model, version: Version, backend: Any) -> Any:
    """A head version's :class:`~gitops.ml.classhead.HeadClassifier` over ``backend`` (its base, opened by
    the caller: an hf backend, shared with other variants on that base). Files verified first."""
    from gitops.ml.classhead import classifier_for

    head, spec = load_head(ws, model, version)
    return classifier_for(backend, head, spec)


def head_base(registry: Registry, model: Model, version: Version) -> tuple[Model, Version]:
    """The pinned base of a head version (:func:`pinned_base`), refused unless its weights have
    hidden states to read (hf, or a pinned peft-lora version merged on demand)."""
    base_model, base = pinned_base(registry, model, version)
    if base.format not in BASE_FORMATS:
        raise ConfigError(f"{model.name}@{version.id} runs on {base_model.name}@{base.id}, format '{base.format}'; "
                          f"a head runs on {' or '.join(BASE_FORMATS)} weights")
    return base_model, base


def predictions(classifier: Any, ids: list[list[int]]) -> list[tuple[str, dict[str, float]]]:
    """Per row of ids: the predicted label and every label's probability (task order, summing to 1)."""
    out = []
    for row in classifier.probabilities(ids):
        best = max(range(len(row)), key=lambda j: (row[j], -j))
        out.append((classifier.labels[best], dict(zip(classifier.labels, row, strict=True))))
    return out
