"""Classification scores of one variant's predictions against the true labels.

- ``accuracy`` (micro: correct rows / rows) with its 95% bootstrap interval, and ``macro_accuracy``
  (the mean of per-class recall, so a rare class weighs as much as a common one);
- ``macro_f1``: the mean F1 over the labels that are true or predicted somewhere in the rows (a
  model that always answers the majority class scores low here however high its accuracy);
- ``log_loss``: the mean of ``-ln p(true label)`` over the rows, from each prediction's per-label
  probabilities (clipped at 1e-15); ``ece``, the expected calibration error: the rows binned by the
  confidence of their prediction (the probability of the predicted label, 10 equal-width bins),
  the mean over bins, weighted by their rows, of ``|accuracy - mean confidence|``. Both are None
  when a scored row has no probabilities;
- per-class precision, recall and F1, and the confusion matrix (true label x predicted label);
- ``invalid_rate``: the share of raw outputs that matched no label (they count as the fallback),
  and up to three of those outputs (``invalid_examples``), so a reader sees what the model said;
- ``latency_p50_ms`` (amortized: a batch's time over its rows), ``tokens_per_prediction`` (prompt
  plus completion tokens: what a prediction costs).

Intervals reuse :mod:`gitops.eval.bootstrap` (same resamples, seed, confidence: one set of draws for
every metric); a difference between two variants is paired over the same rows (:func:`deltas`).
:func:`majority_baseline` scores the rows as always answering the most frequent training label.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from gitops.eval import bootstrap
from gitops.eval.results import ClassScore  # one record for a label's scores, in predictions and results

Interval = tuple[float, float] | None
EPSILON = 1e-15        # the probability a log loss counts for a label given none
BINS = 10              # the calibration error's equal-width confidence bins
INVALID_FLAG = 0.2     # more invalid outputs than this: the variant is flagged, with examples
INVALID_EXAMPLES = 3


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
    macro_f1: float = 0.0
    macro_f1_ci: Interval = None
    log_loss: float | None = None
    log_loss_ci: Interval = None
    ece: float | None = None
    ece_ci: Interval = None
    invalid_examples: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """More than :data:`INVALID_FLAG` of the outputs matched no label: its scores are mostly the fallback's."""
        return self.invalid_rate > INVALID_FLAG

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("accuracy_ci", "macro_f1_ci", "log_loss_ci", "ece_ci"):
            out[name] = list(getattr(self, name)) if getattr(self, name) else None
        return out


def correct(rows: list[dict[str, Any]]) -> list[float]:
    return [1.0 if r["prediction"] == r["label"] else 0.0 for r in rows]


def score(rows: list[dict[str, Any]], labels: list[str]) -> Scores:
    """Scores of prediction rows (``label``, ``prediction``, ``matched``, ``latency_ms``, ``prompt_tokens``,
    ``completion_tokens``, ``probabilities``); rows without a true label are not scored."""
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
    losses = log_losses(rows)
    f1 = macro_f1_stat(rows, labels)
    calibration = ece_stat(rows)
    return Scores(rows=len(rows), accuracy=sum(hits) / len(rows),
                  accuracy_ci=bootstrap.ratio_interval((hits, ones), ([0.0] * len(rows), ones)),
                  macro_accuracy=sum(present) / len(present),
                  invalid_rate=sum(1 for r in rows if not r["matched"]) / len(rows),
                  latency_p50_ms=statistics.median(r["latency_ms"] for r in rows),
                  tokens_per_prediction=sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) / len(rows),
                  per_class=per_class, labels=list(labels), confusion=confusion,
                  macro_f1=_point(f1, len(rows)), macro_f1_ci=_own_interval(f1, len(rows)),
                  log_loss=sum(losses) / len(losses) if losses else None,
                  log_loss_ci=bootstrap.ratio_interval((losses, ones), ([0.0] * len(rows), ones)) if losses else None,
                  ece=_point(calibration, len(rows)) if calibration else None,
                  ece_ci=_own_interval(calibration, len(rows)) if calibration else None,
                  invalid_examples=[str(r.get("raw_output", "")) for r in rows if not r["matched"]][:INVALID_EXAMPLES])


def majority_baseline(train_labels: list[str], rows: list[dict[str, Any]], labels: list[str]) -> tuple[str, Scores]:
    """The rows scored as if every prediction were the most frequent label of ``train_labels`` (ties:
    the first in ``labels`` order), with the training frequencies as its probabilities (add-one
    smoothed, so a label the train split lacks is not infinitely surprising): the reference a
    classifier must beat to have learned anything from the rows themselves."""
    counts = Counter(str(v) for v in train_labels)
    top = max(labels, key=lambda label: (counts.get(label, 0), -labels.index(label)))
    total = sum(counts.get(label, 0) for label in labels) + len(labels)
    prior = {label: (counts.get(label, 0) + 1) / total for label in labels}
    fake = [{"label": r["label"], "prediction": top, "matched": True, "raw_output": top, "latency_ms": 0.0,
             "prompt_tokens": 0, "completion_tokens": 0, "probabilities": prior}
            for r in rows if r.get("label") is not None]
    return top, score(fake, labels)


# --- statistics over draw counts (one row of ``counts`` per bootstrap draw; all ones: the rows as they are)

def log_losses(rows: list[dict[str, Any]]) -> list[float]:
    """``-ln p(true label)`` per row; [] when a row has no probabilities."""
    if any(r.get("probabilities") is None for r in rows):
        return []
    return [-math.log(max(float(r["probabilities"].get(r["label"], 0.0)), EPSILON)) for r in rows]


def macro_f1_stat(rows: list[dict[str, Any]], labels: list[str]):  # untyped: counts -> values
    """macro-F1 as a function of draw counts: per label, true positives, true and predicted rows
    summed over the drawn rows; F1 averaged over the labels true or predicted in the draw."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    truth = np.array([index[r["label"]] for r in rows])
    pred = np.array([index[r["prediction"]] for r in rows])
    hit = (truth == pred).astype(np.float64)

    def stat(counts):  # untyped: numpy
        true_n = _group_sums(counts, truth, len(labels))
        pred_n = _group_sums(counts, pred, len(labels))
        tp = _group_sums(counts * hit, truth, len(labels))
        both = true_n + pred_n
        present = both > 0
        f1 = np.where(present, 2 * tp / np.where(present, both, 1.0), 0.0)
        return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)

    return stat


def ece_stat(rows: list[dict[str, Any]]):  # untyped: counts -> values, or None
    """The expected calibration error as a function of draw counts (None without probabilities)."""
    import numpy as np

    if any(r.get("probabilities") is None for r in rows):
        return None
    conf = np.array([float(r["probabilities"].get(r["prediction"], 0.0)) for r in rows])
    hit = np.array([1.0 if r["prediction"] == r["label"] else 0.0 for r in rows])
    bins = np.minimum((conf * BINS).astype(int), BINS - 1)

    def stat(counts):  # untyped: numpy
        gap = _group_sums(counts * hit, bins, BINS) - _group_sums(counts * conf, bins, BINS)
        return np.abs(gap).sum(axis=1) / counts.sum(axis=1)

    return stat


def _group_sums(counts, groups, n_groups: int):  # untyped: numpy
    """Per draw (row of ``counts``), the counts summed over the units of each group."""
    import numpy as np

    out = np.zeros((counts.shape[0], n_groups))
    order = np.argsort(groups, kind="stable")
    found, starts = np.unique(groups[order], return_index=True)
    out[:, found] = np.add.reduceat(counts[:, order], starts, axis=1)
    return out


def _point(stat, n: int) -> float:
    import numpy as np

    return float(stat(np.ones((1, n)))[0])


def _own_interval(stat, n: int) -> Interval:
    return bootstrap.counts_interval(stat, n)


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


def deltas(cand: list[dict[str, Any]], ref: list[dict[str, Any]], labels: list[str]) -> dict[str, Interval]:
    """Paired bootstrap intervals of cand minus ref, over the same rows in the same order, for
    accuracy, macro-F1, log loss and the calibration error (None where a side has no probabilities)."""
    rows = lambda side: [r for r in side if r.get("label") is not None]  # noqa: E731
    cand, ref = rows(cand), rows(ref)
    ones = [1.0] * len(cand)
    out: dict[str, Interval] = {"accuracy": accuracy_delta(cand, ref)}
    fc, fr = macro_f1_stat(cand, labels), macro_f1_stat(ref, labels)
    out["macro_f1"] = bootstrap.counts_interval(lambda c: fc(c) - fr(c), len(cand)) if cand else None
    lc, lr = log_losses(cand), log_losses(ref)
    out["log_loss"] = bootstrap.ratio_interval((lc, ones), (lr, ones)) if lc and lr else None
    ec, er = ece_stat(cand), ece_stat(ref)
    out["ece"] = bootstrap.counts_interval(lambda c: ec(c) - er(c), len(cand)) if ec and er else None
    return out
