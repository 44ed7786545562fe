"""What a variant of a classification model is given for a row, shared by ``predict`` and ``serve``.

A prompt version's prompts come from its renderer (:class:`~gitops.predict.renderer.PromptRenderer`)
and its retriever (:func:`~gitops.predict.retrieval.build_retriever`, over the TRAIN split of the
config's data set, from the cached index). ``gitops predict`` renders a data set's rows with a
:class:`Prompter`, ``gitops serve`` a request's row with the same one, so a served prompt is
byte-identical to the prompt predict renders for the same row. :func:`pinned_base` is the base
a prompt version runs on, its md5 checked against the one pinned when the version was added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops.core import refs
from gitops.core.promptspec import Retrieval, read_stored, stored_config
from gitops.core.reader import Registry
from gitops.core.schema import Model, Version
from gitops.core.task import ClassificationTask
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, IntegrityError, NotFoundError
from gitops.predict.calibration import Calibrator
from gitops.predict.renderer import PromptRenderer
from gitops.predict.retrieval import Retriever, build_retriever

DEFAULT_MAX_NEW_TOKENS = 8


@dataclass
class Prompter:
    """A variant's renderer, retriever and generation settings (``config`` None: not a prompt version)."""

    task: ClassificationTask
    renderer: PromptRenderer
    retriever: Retriever
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    constrained: bool = False    # generation.constrain: labels (score each label, predict the likeliest)
    chat: bool = False           # the prompt is the user's turn of the base's chat template
    normalize: Callable[[str], str] | None = None   # the data set's normalisation, for rows from outside it
    calibrator: Calibrator | None = None   # calibrate: content-free (implies constrained)

    def render_many(self, rows: list[dict[str, Any]]) -> list[str]:
        """The prompt of each row: retrieval queries with the rendered row (one search per batch)."""
        return self.render_with_examples(rows)[0]

    def render_with_examples(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[list[dict[str, Any]]]]:
        """:meth:`render_many`, and each row's examples (what a calibrated version's content-free
        prompts show too)."""
        examples = self.retriever.retrieve_many(rows)
        return [self.renderer.render(r, ex) for r, ex in zip(rows, examples, strict=True)], examples

    def model_prompts(self, rows: list[dict[str, Any]], tokenizer: Any) -> list[str]:
        """The text the model is given for each row: :meth:`render_many`, through the base's chat
        template (as the user's turn, the assistant's to follow) when the config says ``chat: true``."""
        return self.model_prompts_with_examples(rows, tokenizer)[0]

    def model_prompts_with_examples(self, rows: list[dict[str, Any]],
                                    tokenizer: Any) -> tuple[list[str], list[list[dict[str, Any]]]]:
        """:meth:`model_prompts`, and each row's examples."""
        prompts, examples = self.render_with_examples(rows)
        return self.to_model(prompts, tokenizer), examples

    def to_model(self, prompts: list[str], tokenizer: Any) -> list[str]:
        """Rendered prompts as the model is given them: through the base's chat template (as the
        user's turn, the assistant's to follow) when the config says ``chat: true``."""
        if not self.chat:
            return prompts
        from gitops.ml.tokens import chat_text

        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the prompt version says chat: true, but its base's tokenizer has no chat template; "
                              "add a prompt version with chat: false, or pin a base that has one")
        return [chat_text(tokenizer, p) for p in prompts]

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row from outside the data set (a request, an input file) normalised as the data set's
        rows were at ingest (every string value, the data set's steps in order)."""
        if self.normalize is None:
            return row
        return {k: self.normalize(v) if isinstance(v, str) else v for k, v in row.items()}


def retrieval_of(config: dict[str, Any] | None) -> Retrieval:
    """The ``retrieval`` block of a stored prompt config (none when absent)."""
    r = (config or {}).get("retrieval") or {}
    return Retrieval(type=r.get("type", "none"), k=int(r.get("k", 0)), embedder=r.get("embedder"),
                     seed=int(r.get("seed", 0)), revision=r.get("revision"), embedder_md5=r.get("embedder_md5"))


def open_prompter(ws: Workspace, task: ClassificationTask, config: dict[str, Any] | None,
                  dataset: str | None = None) -> Prompter:
    """The prompter of a variant whose stored prompt config is ``config`` (None: the row alone);
    builds or loads the retrieval index. ``dataset`` is the data set version whose normalisation
    rows from outside it get (default: the config's retrieval data set)."""
    generation = (config or {}).get("generation") or {}
    retriever = build_retriever(ws, (config or {}).get("dataset"), retrieval_of(config), task.render,
                                template=task.input)
    renderer = PromptRenderer(task, config)
    prompter = Prompter(task, renderer, retriever, int(generation.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
                        float(generation.get("temperature", 0.0)),
                        constrained=generation.get("constrain") == "labels" or is_calibrated(config),
                        chat=bool((config or {}).get("chat")),
                        normalize=dataset_normalizer(ws, dataset or (config or {}).get("dataset")))
    if is_calibrated(config):
        prompter.calibrator = Calibrator(task, renderer.render, prompter.to_model, retriever.key_of,
                                         chat=prompter.chat)
    return prompter


def is_calibrated(config: dict[str, Any] | None) -> bool:
    """Whether a stored prompt config asks for contextual calibration (``calibrate: content-free``)."""
    return (config or {}).get("calibrate") == "content-free"


def dataset_normalizer(ws: Workspace, dataset: str | None) -> Callable[[str], str] | None:
    """The normalisation the data set version ``dataset`` applied to its rows at ingest (None: none,
    or no data set named)."""
    if not dataset:
        return None
    from gitops.data import batches
    from gitops.data.normalize import normalizer

    ds, version = batches.resolve(ws, dataset)
    steps = version.normalize if version.normalize is not None else ds.normalize
    return normalizer(list(steps or []))


def prompt_config(ws: Workspace, model: Model, version: Version) -> dict[str, Any] | None:
    """What a version runs as its prompt config: for a prompt version, its reviewed file in ``ws``
    (checked against its md5, validated as ``prompt add`` validates, equal to model.yaml's copy:
    :func:`gitops.core.promptspec.stored_config`); None for weights."""
    if version.format != "prompt":
        return None
    return stored_config(f"{model.name}@{version.id}", version, read_stored(ws.root / version.path))


def pinned_base(registry: Registry, model: Model, version: Version) -> tuple[Model, Version]:
    """The model and version a prompt version runs on, as ``registry`` records them; refused when
    it is missing, or its md5 is no longer the one pinned when the prompt version was added."""
    if version.format != "prompt":
        raise ConfigError(f"{model.name}@{version.id} is not a prompt version")
    try:
        base_model, base = registry.resolve(refs.parse_ref(version.base_model or "", require_ref=True))
    except NotFoundError as exc:
        raise NotFoundError(f"{model.name}@{version.id} runs on {version.base_model}, which the registry does not "
                            f"have ({exc})") from None
    if base.md5 != version.base_md5:
        raise IntegrityError(f"{model.name}@{version.id} was added on {version.base_model} with md5 "
                             f"{version.base_md5}, but the registry now records md5 {base.md5} for it")
    return base_model, base
