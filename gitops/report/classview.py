"""The report of a classification model: the variants table of ``gitops compare`` (variant, kind,
accuracy with its interval, the paired interval against the baseline, macro-F1, log loss, expected
calibration error, macro accuracy, invalid outputs, p50 latency, tokens per prediction), the
majority-class reference row, a flag with three raw outputs for a variant whose outputs matched
no label more than 20% of the time, per-class scores and confusion matrices.

When several results files of one classification model are rendered together (a PR that adds or
moves several variants) and they share the baseline and the scored rows, :func:`combine` makes
ONE table of them: the baseline once, then every candidate with its interval against it. Files
whose baselines or rows differ are shown separately, and a sentence says why. Everything from data
is escaped here (:func:`gitops.report.escape.cell`); the numbers and words are ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gitops.eval.results import (
    ClassificationInfo,
    ClassificationSide,
    Delta,
    EvalResults,
    MajorityBaseline,
    ModelResult,
)
from gitops.report.escape import Safe, cell, inline

HEADER = Safe("| variant | kind | accuracy | vs baseline | macro-F1 | log loss | ECE | macro acc. | invalid | "
              "p50 latency | tokens |\n|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
INVALID_FLAG = 0.2     # gitops.predict.scoring.INVALID_FLAG: the report reads documents, not predictions
MAX_DETAIL_LABELS = 30   # more labels than this: per-class scores and the matrix stay in the results file


@dataclass
class VariantTable:
    """One compare table: a caption, its rows (escaped), and the sentences under it."""

    caption: Safe
    rows: list[Safe]
    notes: list[Safe] = field(default_factory=list)


@dataclass
class Combined:
    """The tables that join several results, which results they hold, and why others were not joined."""

    tables: list[VariantTable] = field(default_factory=list)
    joined: set[int] = field(default_factory=set)      # indexes of results shown in a joined table
    notes: list[Safe] = field(default_factory=list)


def is_classification(r: EvalResults) -> bool:
    return r.classification is not None


def info_of(r: EvalResults) -> ClassificationInfo:
    """The classification block of a result :func:`is_classification` accepted."""
    assert r.classification is not None
    return r.classification


def table(r: EvalResults, limit: int | None = None) -> VariantTable:
    """One result's table: the baseline, the parent, then the candidate (its interval vs the baseline)."""
    info = r.classification
    assert info is not None
    rows = []
    both = r.parent is not None and r.baseline is not None and r.parent.version == r.baseline.version
    if r.baseline is not None and info.baseline is not None:
        rows.append(_row(r.baseline, info.baseline, "baseline, parent" if both else "baseline", None, limit))
    if r.parent is not None and info.parent is not None and not both:
        rows.append(_row(r.parent, info.parent, "parent", None, limit))
    comparison = r.comparison("baseline")
    rows.append(_row(r.candidate, info.candidate, "candidate", comparison.deltas.get("accuracy") if comparison
                     else None, limit, baseline=r.baseline is not None))
    if info.majority is not None:
        rows.append(majority_row(info.majority, limit))
    notes = [note] if (note := parent_note(r, limit)) else []
    notes += invalid_notes([(m, side) for m, side in ((r.baseline, info.baseline), (r.parent, info.parent),
                                                     (r.candidate, info.candidate)) if m is not None and side], limit)
    return VariantTable(_caption(r), rows, [*notes, interval_note(r)])


def majority_row(m: MajorityBaseline, limit: int | None = None) -> Safe:
    """The reference row: always answering the most frequent label of the train split."""
    ci = f" [{m.accuracy_ci[0]:.1%}, {m.accuracy_ci[1]:.1%}]" if m.accuracy_ci else ""
    f1ci = f" [{m.macro_f1_ci[0]:.1%}, {m.macro_f1_ci[1]:.1%}]" if m.macro_f1_ci else ""
    cells = [f"always {cell(m.label, limit)} (majority class)", "reference", _pct(m.accuracy) + ci, "—",
             _pct(m.macro_f1) + f1ci, _num(m.log_loss, "", 3), _pct(m.ece), _pct(m.macro_accuracy), "—", "—", "—"]
    return Safe("| " + " | ".join(cells) + " |")


def invalid_notes(sides: list[tuple[ModelResult, ClassificationSide]], limit: int | None = None) -> list[Safe]:
    """A warning per side whose outputs matched no label more than 20% of the time, with three of them."""
    out, seen = [], set()
    for m, side in sides:
        rate = m.metrics.get("invalid_rate")
        if rate is None or rate <= INVALID_FLAG or m.version in seen:
            continue
        seen.add(m.version)
        shown = ", ".join(inline(json.dumps(o, ensure_ascii=False), min(limit or 200, 200))
                          for o in side.invalid_examples[:3]) or "none recorded"
        out.append(Safe(f"⚠️ {cell(m.ref, limit)} matched no label in {rate:.1%} of its outputs (over "
                        f"{INVALID_FLAG:.0%}): those rows were scored as the fallback label, so its accuracy says "
                        f"little about what it learned. Three of its raw outputs: {shown}."))
    return out


def parent_note(r: EvalResults, limit: int | None = None) -> Safe | None:
    """What a conversion cost in accuracy, when the candidate was compared with its parent."""
    parent = r.comparison("parent")
    if parent is None or "accuracy" not in parent.deltas:
        return None
    return Safe(f"Against its parent {cell(parent.version, limit)}: accuracy {_delta(parent.deltas['accuracy'])}.")


def combine(results: list[EvalResults], limit: int | None = None) -> Combined:
    """Join the results of each classification model with two or more results into one table when
    they share the baseline (version and md5), the data set, split and scored rows."""
    out = Combined()
    by_model: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        if is_classification(r):
            by_model.setdefault(r.model, []).append(i)
    for model, idx in by_model.items():
        if len(idx) < 2:
            continue
        group = [results[i] for i in idx]
        why = _why_apart(group)
        if why:
            out.notes.append(Safe(f"The {len(group)} results of {cell(model, limit)} are shown separately: {why}."))
            continue
        first = group[0]
        first_info = info_of(first)
        rows = []
        if first.baseline is not None and first_info.baseline is not None:
            rows.append(_row(first.baseline, first_info.baseline, "baseline", None, limit))
        for r in group:
            comparison = r.comparison("baseline")
            rows.append(_row(r.candidate, info_of(r).candidate, "candidate",
                             comparison.deltas.get("accuracy") if comparison else None, limit,
                             baseline=r.baseline is not None))
        if first_info.majority is not None:
            rows.append(majority_row(first_info.majority, limit))
        caption = Safe(f"One table for {len(group)} candidates of {cell(model, limit)}, on the same rows. "
                       f"{_caption(first)}")
        sides = [(first.baseline, first_info.baseline)] if first.baseline is not None else []
        sides += [(r.candidate, info_of(r).candidate) for r in group]
        out.tables.append(VariantTable(caption, rows, [*invalid_notes([(m, side) for m, side in sides if side], limit),
                                                       interval_note(first)]))
        out.joined.update(idx)
    return out


def _why_apart(group: list[EvalResults]) -> str | None:
    def baseline(r: EvalResults) -> tuple[str, str | None] | None:
        return (r.baseline.version, r.baseline.md5) if r.baseline is not None else None

    if len({baseline(r) for r in group}) > 1:
        shown = ", ".join(sorted({r.baseline.version if r.baseline else "none" for r in group}))
        return f"their baselines differ ({cell(shown, 200)})"
    rows = {(r.dataset.ref, r.dataset.split, info_of(r).rows_md5) for r in group}
    if len(rows) > 1:
        return "they were scored on different rows (data set, split or --max-rows differ)"
    return None


def _caption(r: EvalResults) -> Safe:
    return Safe(f"Classification on {cell(r.dataset.ref, 200)} ({cell(r.dataset.split, 40)}, "
                f"{r.dataset.rows:,} rows); accuracy with its {r.statistics.confidence:.0%} bootstrap interval.")


def interval_note(r: EvalResults) -> Safe:
    st = r.statistics
    return Safe(f"vs baseline: the candidate's accuracy minus the baseline's, and its {st.confidence:.0%} "
                f"interval from a paired bootstrap ({st.resamples:,} resamples, seed {st.seed}) over the same "
                "rows. macro-F1: the mean F1 over the labels. Log loss: the mean -ln p(true label) from each "
                "prediction's label probabilities. ECE: expected calibration error over 10 confidence bins. "
                "Invalid: outputs that matched no label (scored as the fallback). Latency: a batch's time "
                "over its rows. Tokens: prompt plus completion per prediction. The majority class row always "
                "answers the most frequent label of the train split (its probabilities: the train split's "
                "label frequencies).")


def _row(m: ModelResult, side: ClassificationSide, role: str, delta: Delta | None, limit: int | None,
         baseline: bool = False) -> Safe:
    label = f"{cell(m.ref, limit)}" + (f" ({role})" if role != "candidate" else "")
    cells = [label, cell(side.kind, limit),
             *variant_cells(m, side, delta, candidate=role == "candidate", baseline=baseline).values()]
    return Safe("| " + " | ".join(cells) + " |")


def variant_cells(m: ModelResult, side: ClassificationSide, delta: Delta | None, *, candidate: bool,
                  baseline: bool) -> dict[str, str]:
    """The numbers of one variant's row, formatted (no text from data), in the report's column
    order: accuracy with its interval, the change against the baseline (a candidate's only),
    macro-F1, log loss and ECE with their intervals, macro accuracy, invalid outputs (flagged over
    the limit), p50 latency and tokens per prediction. ``gitops site`` shows the same cells."""
    metrics = m.metrics
    ci = f" [{side.accuracy_ci[0]:.1%}, {side.accuracy_ci[1]:.1%}]" if side.accuracy_ci else ""
    vs = "—" if not candidate or not baseline else (_delta(delta) if delta is not None else "n/a")
    invalid = metrics.get("invalid_rate")
    flag = "⚠️ " if invalid is not None and invalid > INVALID_FLAG else ""
    return {"accuracy": _pct(metrics.get("accuracy")) + ci, "vs_baseline": vs,
            "macro_f1": _pct(metrics.get("macro_f1")) + _ci(side.macro_f1_ci),
            "log_loss": _num(metrics.get("log_loss"), "", 3) + _ci(side.log_loss_ci, 3),
            "ece": _pct(metrics.get("ece")) + _ci(side.ece_ci),
            "macro_accuracy": _pct(metrics.get("macro_accuracy")), "invalid": flag + _pct(invalid),
            "latency": _num(metrics.get("latency_p50_ms"), " ms"),
            "tokens": _num(metrics.get("tokens_per_prediction"), "")}


def _ci(ci: list[float] | None, digits: int | None = None) -> str:
    if not ci:
        return ""
    if digits is None:
        return f" [{ci[0]:.1%}, {ci[1]:.1%}]"
    return f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _delta(d: Delta) -> str:
    if d.delta is None:
        return "n/a"
    text = f"{d.delta:+.1%}"
    if d.low is None or d.high is None:
        return text + " (no interval)"
    return text + f" [{d.low:+.1%}, {d.high:+.1%}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def details(r: EvalResults, limit: int | None = None) -> list[tuple[Safe, list[Safe], list[Safe]]]:
    """Per side: a title, the per-class table rows and the confusion matrix rows (header rows
    included); empty tables when there are more than :data:`MAX_DETAIL_LABELS` labels."""
    info = r.classification
    assert info is not None
    out: list[Any] = []
    for role, m in (("Candidate", r.candidate), ("Baseline", r.baseline), ("Parent", r.parent)):
        side = getattr(info, role.lower())
        if m is None or side is None or (role == "Parent" and r.baseline is not None
                                         and r.baseline.version == m.version):
            continue  # a parent that is also the baseline is shown once
        title = Safe(f"{role} {cell(m.ref, limit)} ({cell(side.kind, limit)})")
        if len(info.labels) > MAX_DETAIL_LABELS:
            out.append((title, [], []))
            continue
        per_class = [Safe("| label | precision | recall | F1 | support |"), Safe("|---|--:|--:|--:|--:|")]
        per_class += [Safe(f"| {cell(c.label, limit)} | {c.precision:.1%} | {c.recall:.1%} | {c.f1:.1%} | "
                           f"{c.support:,} |") for c in side.per_class]
        labels = [cell(label, limit) for label in info.labels]
        matrix = [Safe("| true / predicted | " + " | ".join(labels) + " |"),
                  Safe("|---|" + "--:|" * len(labels))]
        matrix += [Safe(f"| {label} | " + " | ".join(f"{n:,}" for n in row) + " |")
                   for label, row in zip(labels, side.confusion, strict=True)]
        out.append((title, per_class, matrix if side.confusion else []))
    return out


def too_many_labels(r: EvalResults) -> int | None:
    """The label count when the detail tables are left out for it, else None."""
    info = r.classification
    return len(info.labels) if info is not None and len(info.labels) > MAX_DETAIL_LABELS else None
