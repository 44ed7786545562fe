"""A prompt version behind ``/v1/completions``: a request's text is a row, rendered before it runs.

A prompt version holds no weights: the server runs its pinned base and, per request, renders the
prompt the way ``gitops predict`` does (the same :class:`~gitops.predict.prompter.Prompter`: the
task's input template fills ``{sample}``, the retriever's examples over the train split fill
``{context}``), so a served prompt is byte-identical to the one predict renders for the same row.

- The text is the sample. When the model's task input template names one column, the text fills
  it; when it names several, the text must be a JSON object holding each of them (else 400,
  naming the missing column).
- The prompt version's ``generation`` settings are the defaults (``max_new_tokens``,
  ``temperature``); a request's own values override them, within the server's limits.
- Each choice carries the task's reading of the raw output as an extension field,
  ``"classification": {"label": "4", "matched": true}`` (``matched`` false: no extraction rule
  matched and the label is the task's fallback), beside the raw ``text``.
- The row is normalised as the data set the version names was at ingest (``html_unescape``,
  ``strip``...), so a request is read as predict reads that data set's rows.
- ``chat: true`` in the config: the rendered prompt is the user's turn of the base's chat template.
- ``generation: {constrain: labels}``: nothing is generated. Every label is scored as the
  prompt's continuation (:mod:`gitops.ml.choices`, predict's own path) and the likeliest is the
  answer's text, so the served answer equals predict's ``raw_output`` for that row; the extension
  field adds ``probabilities`` (one per label, summing to 1). ``max_tokens``, ``temperature`` and
  ``stop`` do not apply to a constrained version.
- ``calibrate: content-free``: answered as a constrained version is, with the labels'
  probabilities divided by those of content-free inputs under the same examples
  (:mod:`gitops.predict.calibration`, predict's own code and cache key).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from gitops.core.task import ClassificationTask
from gitops.serve.engine import LoadedModel
from gitops.serve.protocol import CompletionRequest, bad


def render(model: LoadedModel, req: CompletionRequest) -> CompletionRequest:
    """``req`` with each prompt replaced by the prompt version's rendering of it as a row, and the
    version's generation settings where the request left them out. Raises APIError (400)."""
    return render_rows(model, req)[0]


def render_rows(model: LoadedModel, req: CompletionRequest) -> tuple[CompletionRequest, list[list[dict[str, Any]]]]:
    """:func:`render`, and each prompt's retrieved examples (a calibrated version's content-free
    prompts show the same ones)."""
    prompter = model.prompt
    assert prompter is not None
    rows = [prompter.clean(row_of(prompter.task, text)) for text in req.prompts]
    with model.render_lock:  # one retrieval at a time per model (an index is not promised thread-safe)
        prompts, examples = prompter.model_prompts_with_examples(rows, model.backend.tokenizer)
    max_tokens = req.max_tokens if "max_tokens" in req.given else prompter.max_new_tokens
    sampling = req.sampling if "temperature" in req.given else replace(req.sampling,
                                                                          temperature=prompter.temperature)
    return replace(req, prompts=tuple(prompts), max_tokens=max_tokens, sampling=sampling), examples


def row_of(task: ClassificationTask, text: str) -> dict[str, Any]:
    """The row a request's text stands for: ``{column: text}`` for a one-column input template,
    else the JSON object the text must be, holding every column the template names."""
    columns = task.slots()
    if len(columns) == 1:
        return {columns[0]: text}
    names = ", ".join(columns)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise bad("prompt", f"This model's input names the columns {names}: send each prompt as a JSON object "
                            f"holding them, like {json.dumps(dict.fromkeys(columns, '...'))}.", "invalid_row")
    if missing := [c for c in columns if c not in data]:
        raise bad("prompt", f"The prompt's JSON object has no column '{missing[0][:64]}' (this model's input "
                            f"names {names}).", "missing_column")
    if wrong := [c for c in columns if data[c] is not None and not isinstance(data[c], (str, int, float))]:
        raise bad("prompt", f"The prompt's column '{wrong[0][:64]}' must be a string or a number.", "invalid_row")
    return {c: data[c] for c in columns}


def classification(model: LoadedModel, output: str) -> dict[str, Any]:
    """The extension field of one choice: the label the task's rules read in ``output``."""
    assert model.prompt is not None
    label, matched = model.prompt.task.predict(output)
    return {"label": label, "matched": matched}


def score(model: LoadedModel, prompts: list[str],
          examples: list[list[dict[str, Any]]] | None = None) -> list[tuple[str, dict[str, float], int]]:
    """A constrained version's answers to rendered ``prompts``: per prompt, the likeliest label,
    every label's probability and the chosen label's token count (what predict computes: the same
    :func:`~gitops.predict.calibration.label_answers`, calibrated by ``examples``, each prompt's
    retrieved examples, when the version says ``calibrate: content-free``)."""
    from gitops.predict.calibration import label_answers

    prompter = model.prompt
    assert prompter is not None
    labels = prompter.task.labels
    with model.score_lock:  # one scoring at a time per model (the calibration cache too), beside generation
        answers = label_answers(model.backend, prompter.task, prompts, examples, chat=prompter.chat,
                                calibrator=prompter.calibrator)
    return [(labels[j], dict(zip(labels, probs, strict=True)), n) for j, probs, n in answers]
