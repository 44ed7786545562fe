"""Contextual calibration of a prompt version's label probabilities (``calibrate: content-free``).

Zhao et al. 2021, "Calibrate Before Use": a few-shot prompt biases a small model towards some
labels (the most frequent label among the examples, the last example's label, a label the format
favours), whatever the row says. The bias is measured by asking the same prompt, with the same
instruction and the same examples, about inputs that carry no content (:data:`CONTENT_FREE`:
"N/A", "" and "[MASK]", each rendered through the task's input template as the row would be):
their label probabilities, averaged, are ``p_cf``. Each row's label probabilities are divided by
``p_cf`` and renormalised; the prediction is the likeliest label after that (a tie goes to the
first in the task's ``labels`` order). So a calibrated version always scores the labels.

``p_cf`` depends on the prompt's examples, so it is computed per example set and cached by the
examples' ids (their data set keys, in prompt order): once per version for zero-shot prompts, once
per row's example set for ``random``, ``bm25`` and ``semantic`` retrieval. ``gitops predict`` and
``gitops serve`` run the same :func:`label_answers`, so a row gets the same answer from both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitops.core.task import ClassificationTask

CONTENT_FREE = ("N/A", "", "[MASK]")
MAX_CACHED = 4096     # example sets whose p_cf is kept (a server sees a new set per request with bm25)
MIN_PRIOR = 1e-12     # a label the content-free inputs never give still divides by something


@dataclass
class Calibrator:
    """The content-free label probabilities of one prompt version, per example set.

    ``render(row, examples)`` is the version's prompt for a row (its template, instruction and the
    given examples), ``to_model(prompts, tokenizer)`` what the model is given for prompts (the chat
    template, when the version says so), ``key_of(example)`` an example's id."""

    task: ClassificationTask
    render: Callable[[dict[str, Any], list[dict[str, Any]]], str]
    to_model: Callable[[list[str], Any], list[str]]
    key_of: Callable[[dict[str, Any]], str]
    chat: bool = False
    computed: int = 0     # example sets whose content-free inputs were scored (the cache's misses)
    cache: OrderedDict[tuple[str, ...], list[float]] = field(default_factory=OrderedDict, repr=False)

    def content_free_rows(self) -> list[dict[str, str]]:
        """Each content-free input as a row: every column the task's input template names holds it."""
        return [dict.fromkeys(self.task.slots(), text) for text in CONTENT_FREE]

    def key(self, examples: list[dict[str, Any]]) -> tuple[str, ...]:
        """What identifies an example set: its examples' ids in prompt order (their rendered text
        for a row without key columns)."""
        return tuple(self.key_of(e) or "\0text\0" + self.task.render(e) for e in examples)

    def priors(self, backend: Any, example_sets: list[list[dict[str, Any]]]) -> list[list[float]]:
        """``p_cf`` for each example set, in task label order: the cached ones as they are, the
        others from one scoring call over all their content-free prompts."""
        from gitops.ml import choices

        keys = [self.key(ex) for ex in example_sets]
        missing: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for k, ex in zip(keys, example_sets, strict=True):
            if k not in self.cache and k not in missing:
                missing[k] = ex
        if missing:
            free = self.content_free_rows()
            prompts = [self.render(row, ex) for ex in missing.values() for row in free]
            scores = choices.score_labels(backend, self.to_model(prompts, backend.tokenizer), self.task.labels,
                                          chat=self.chat)
            for n, k in enumerate(missing):
                probs = [choices.probabilities(s) for s in scores[n * len(free):(n + 1) * len(free)]]
                self.cache[k] = [sum(column) / len(free) for column in zip(*probs, strict=True)]
                self.computed += 1
        out = []
        for k in keys:
            self.cache.move_to_end(k)
            out.append(self.cache[k])
        while len(self.cache) > MAX_CACHED:
            self.cache.popitem(last=False)
        return out


def calibrated(probabilities: list[float], prior: list[float]) -> list[float]:
    """``probabilities`` divided by the content-free ``prior``, label by label, renormalised."""
    weights = [p / max(q, MIN_PRIOR) for p, q in zip(probabilities, prior, strict=True)]
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else list(probabilities)


def label_answers(backend: Any, task: ClassificationTask, prompts: list[str],
                  example_sets: list[list[dict[str, Any]]] | None, *, chat: bool = False,
                  calibrator: Calibrator | None = None) -> list[tuple[int, list[float], int]]:
    """Per rendered prompt (the text the model is given): the predicted label's index, every label's
    probability (task order, summing to 1; calibrated when ``calibrator`` is given, by the prompt's
    ``example_sets`` entry) and the predicted label's token count. What ``gitops predict`` and
    ``gitops serve`` both answer a label-scored row with."""
    from gitops.ml import choices

    scores = choices.score_labels(backend, prompts, task.labels, chat=chat)
    if calibrator is None:
        out = []
        for row in scores:
            j = choices.best(row)
            out.append((j, choices.probabilities(row), row[j][1]))
        return out
    assert example_sets is not None and len(example_sets) == len(prompts)
    priors = calibrator.priors(backend, example_sets)
    out = []
    for row, prior in zip(scores, priors, strict=True):
        probs = calibrated(choices.probabilities(row), prior)
        j = max(range(len(probs)), key=lambda i: (probs[i], -i))
        out.append((j, probs, row[j][1]))
    return out
