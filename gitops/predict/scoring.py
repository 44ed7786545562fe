"""Classification scores of one variant's predictions against the true labels.

- ``accuracy`` (micro: correct rows / rows) and ``macro_accuracy`` (the mean of per-class recall,
  so a rare class weighs as much as a common one), each with a 95% bootstrap interval;
- per-class precision, recall and F1, and the confusion matrix (true label x predicted label);
- ``invalid_rate``: the share of raw outputs that matched no label (they count as the fallback);
- ``latency_p50_ms`` (amortized: a batch's time over its rows), ``tokens_per_prediction`` (prompt
  plus completion tokens: what a prediction costs).

Intervals reuse :mod:`gitops.eval.bootstrap` (same resamples, seed, confidence); a difference
between two variants is paired over the same rows (:func:`accuracy_delta`).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from gitops.eval import bootstrap
from gitops.eval.results import ClassScore  # one record for a label's scores, in predictions and results


@dataclass
class Scores:
    rows: int
    accuracy: float
    accuracy_ci: tuple[float, float] | None
    macro_accuracy: float
    invalid_rate: float
    latency_p50_ms: float
    tokens_per_prediction: float
    per_class: list[ClassScore] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # confusion[true][predicted], in labels order

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["accuracy_ci"] = list(self.accuracy_ci) if self.accuracy_ci else None
        return out


def correct(rows: list[dict[str, Any]]) -> list[float]:
    return [1.0 if r["prediction"] == r["label"] else 0.0 for r in rows]


def score(rows: list[dict[str, Any]], labels: list[str]) -> Scores:
    """Scores of prediction rows (``label``, ``prediction``, ``matched``, ``latency_ms``, ``prompt_tokens``,
    ``completion_tokens``); rows without a true label are not scored."""
    rows = [r for r in rows if r.get("label") is not None]
    if not rows:
        return Scores(0, 0.0, None, 0.0, 0.0, 0.0, 0.0, labels=list(labels))
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for r in rows:
        confusion[index[r["label"]]][index[r["prediction"]]] += 1
    per_class = [_class_score(label, i, confusion) for i, label in enumerate(labels)]
    hits = correct(rows)
    ones = [1.0] * len(rows)
    present = [c.recall for c in per_class if c.support]
    return Scores(rows=len(rows), accuracy=sum(hits) / len(rows),
                  accuracy_ci=bootstrap.ratio_interval((hits, ones), ([0.0] * len(rows), ones)),
                  macro_accuracy=sum(present) / len(present),
                  invalid_rate=sum(1 for r in rows if not r["matched"]) / len(rows),
                  latency_p50_ms=statistics.median(r["latency_ms"] for r in rows),
                  tokens_per_prediction=sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) / len(rows),
                  per_class=per_class, labels=list(labels), confusion=confusion)


def _class_score(label: str, i: int, confusion: list[list[int]]) -> ClassScore:
    tp = confusion[i][i]
    predicted = sum(row[i] for row in confusion)
    support = sum(confusion[i])
    precision = tp / predicted if predicted else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassScore(label, precision, recall, f1, support)


def accuracy_delta(cand: list[dict[str, Any]], ref: list[dict[str, Any]]) -> tuple[float, float] | None:
    """Paired bootstrap interval of accuracy(cand) - accuracy(ref) over the same rows, in the same order."""
    ones = [1.0] * len(cand)
    return bootstrap.ratio_interval((correct(cand), ones), (correct(ref), ones))
