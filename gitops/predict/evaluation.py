"""``gitops eval`` for a ``task: classification`` model: the candidate, its baseline and a converted
candidate's parent predict the same rows, and the results document carries their accuracy.

Each side runs through :func:`gitops.predict.batch.predict` (a prompt version on its pinned
base with its template and retrieved examples, a fine-tune or conversion on its own weights) over
the same data set version split, cut to the same first ``max_rows`` rows, and is scored by
:mod:`gitops.predict.scoring`. So every variant kind is accepted on either side, and the numbers
are exactly what ``gitops predict`` and ``gitops compare`` give on those rows.

The document is the one ``gitops eval`` always writes (:class:`gitops.eval.results.EvalResults`):
``metrics`` hold accuracy, macro-F1, log loss, expected calibration error, macro accuracy, the
invalid-output rate, p50 latency and tokens per prediction (so the model's gates hold on them),
each comparison carries their deltas with paired bootstrap intervals over the rows, and
``classification`` holds the labels, per-class scores, confusion matrices, up to three outputs
that matched no label, and the majority-class reference (always the most frequent train label). Lives on the predict
floor because it runs predictions; ``gitops.eval`` below it does not know about them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from gitops import timestamps
from gitops.core.materialize import loadable
from gitops.core.workspace import Workspace
from gitops.errors import EvalError
from gitops.eval import bootstrap
from gitops.eval.compare import statistics
from gitops.eval.evaluate import (
    UNTRAINED_FORMATS,
    EvalOptions,
    EvalPlan,
    default_threads,
    evaluate_completion,
    read_curve,
)
from gitops.eval.gates import evaluate_gates
from gitops.eval.results import (
    ClassificationInfo,
    ClassificationSide,
    Comparison,
    DatasetInfo,
    Delta,
    Environment,
    EvalResults,
    GenerationInfo,
    MajorityBaseline,
    ModelResult,
    Sample,
    Statistics,
)
from gitops.predict import scoring
from gitops.predict.batch import PredictResult, plan_predict, predict
from gitops.predict.pool import BackendPool
from gitops.predict.prompter import DEFAULT_MAX_NEW_TOKENS
from gitops.predict.variants import majority_of, variant_kind

StageProgress = Callable[[str, int, int], None]


def evaluate(ws: Workspace, plan: EvalPlan, options: EvalOptions | None = None) -> EvalResults:
    """Measure ``plan`` (:func:`gitops.eval.evaluate.plan_eval`'s) and return the results document:
    one signature for every task. A classification model's sides predict the rows
    (:func:`evaluate_classification`); a completion model's are scored by
    :func:`gitops.eval.evaluate.evaluate_completion`. The dispatch lives here, above ``gitops.eval``,
    which never imports ``gitops.predict``."""
    if plan.task == "classification":
        return evaluate_classification(ws, plan, options)
    return evaluate_completion(ws, plan, options)


def evaluate_classification(ws: Workspace, plan: EvalPlan, options: EvalOptions | None = None) -> EvalResults:
    """Predict ``plan``'s rows with the candidate, the baseline and the parent; score, compare, gate.

    ``plan`` is :func:`gitops.eval.evaluate.plan_eval`'s for a classification model. ``max_rows``
    keeps the first rows of the split (in data set order), the same ones for every side. Every
    side's rows are read and checked (columns, label vocabulary) before any model loads."""
    options = options or EvalOptions()
    threads = options.threads or default_threads()
    sides = plan.sides()
    plans = _checked_plans(ws, plan, options.max_rows)
    runs: dict[str, PredictResult] = {}
    with BackendPool(options.device, threads) as pool:  # sides on the same weights (prompts on one base) open them once
        for name, side in sides.items():
            same = next((runs[n] for n in runs if plans[n].ref == plans[name].ref), None)  # measured once
            runs[name] = same or predict(ws, str(side.ref), plan.dataset_ref, split=plan.split,
                                         batch_size=options.batch_size, limit=options.max_rows,
                                         device=options.device, threads=threads,
                                         progress=_stage(options.progress, name), pool=pool, plan=plans[name])
    labelled = _same_rows(runs)
    keys = [p["key"] for p in labelled["candidate"]]
    cand_plan = plans["candidate"]
    results = {name: _model_result(ws, sides[name].label, plans[name], runs[name]) for name in runs}
    stats = statistics()
    comparisons = [compare_predictions(name, results[name].version, labelled["candidate"], labelled[name], stats,
                                       list(cand_plan.task.labels))
                   for name in ("baseline", "parent") if name in runs]
    gates = evaluate_gates(plan.model.gates, results["candidate"].metrics,
                           results["baseline"].metrics if "baseline" in results else None,
                           next((c.deltas for c in comparisons if c.against == "baseline"), None))
    info = ClassificationInfo(labels=list(cand_plan.task.labels), rows_md5=rows_digest(keys),
                              majority=majority_detail(ws, plan.dataset_ref, cand_plan, labelled["candidate"]),
                              **{name: side_detail(variant_kind(plans[name].version), runs[name].scores)
                                 for name in runs})
    config = cand_plan.config or {}
    max_new = int((config.get("generation") or {}).get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
    shown = _samples(cand_plan, labelled, options.samples)
    return EvalResults(
        created_at=timestamps.utc_now(), model=plan.model.name, alias=options.alias or plan.alias,
        dataset=DatasetInfo(ref=plan.dataset_ref, split=plan.split, rows=len(keys)),
        generation=GenerationInfo(max_new_tokens=max_new, greedy=True, batch_size=options.batch_size,
                                  prompt_words=0, samples=len(shown)),
        candidate=results["candidate"], baseline=results.get("baseline"), parent=results.get("parent"),
        comparisons=comparisons, statistics=stats, gates=gates, samples=shown, classification=info,
        environment=Environment.collect(options.device, threads))


def _checked_plans(ws: Workspace, plan: EvalPlan, max_rows: int | None) -> dict[str, Any]:
    """Every side's rows read and checked (columns, labels in the vocabulary), before any model loads;
    each side's pinned records are used as they are."""
    plans = {name: plan_predict(ws, str(side.ref), plan.dataset_ref, plan.split, limit=max_rows,
                                records=(side.model, side.version))
             for name, side in plan.sides().items()}
    cand = plans["candidate"]
    if not any(r.get(cand.task.label) is not None for r in cand.rows):
        raise EvalError(f"{plan.dataset_ref} has no labelled rows in split '{plan.split}' (column "
                        f"'{cand.task.label}'), so there is no accuracy to measure")
    for name, other in plans.items():
        if other.task.labels != cand.task.labels:
            raise EvalError(f"the {name} {other.ref} has another label vocabulary than the candidate; "
                            "classification variants compare only on one task")
    return plans


def _same_rows(runs: dict[str, PredictResult]) -> dict[str, list[dict[str, Any]]]:
    """Each side's labelled predictions; refused unless every side predicted the candidate's rows."""
    labelled = {name: [p for p in run.predictions if p.get("label") is not None] for name, run in runs.items()}
    keys = [p["key"] for p in labelled["candidate"]]
    for name, rows in labelled.items():
        if [p["key"] for p in rows] != keys:
            raise EvalError(f"the {name} predicted other rows than the candidate; they cannot be compared")
    return labelled


def classification_metrics(scores: scoring.Scores) -> dict[str, float | None]:
    """The metrics a classification side records (and gates may hold), from its scores; log loss
    and the calibration error only when its predictions carry probabilities."""
    out: dict[str, float | None] = {
           "accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "macro_accuracy": scores.macro_accuracy,
           "invalid_rate": scores.invalid_rate, "latency_p50_ms": scores.latency_p50_ms,
           "tokens_per_prediction": scores.tokens_per_prediction}
    if scores.log_loss is not None:
        out["log_loss"], out["ece"] = scores.log_loss, scores.ece
    return out


def compare_predictions(against: str, version: str, cand: list[dict[str, Any]], other: list[dict[str, Any]],
                        stats: Statistics | None = None, labels: list[str] | None = None) -> Comparison:
    """Candidate minus ``other`` for every classification metric, paired over the same rows:
    accuracy, macro-F1, log loss and the calibration error by :func:`scoring.deltas`; the invalid
    rate, tokens and p50 latency by the same bootstrap; macro accuracy (a mean of per-class
    recalls) without an interval."""
    stats = stats or statistics()
    settings: dict[str, Any] = {"resamples": stats.resamples, "seed": stats.seed, "confidence": stats.confidence}
    labels = labels or sorted({p["label"] for p in cand} | {p["prediction"] for p in cand + other})
    mc, mo = (classification_metrics(scoring.score(rows, labels)) for rows in (cand, other))
    paired = scoring.deltas(cand, other, labels)
    ones = [1.0] * len(cand)

    def per_row(rows: list[dict[str, Any]], f: Callable[[dict[str, Any]], float]) -> tuple[list[float], list[float]]:
        return [f(p) for p in rows], ones

    def invalid(p: dict[str, Any]) -> float:
        return 0.0 if p["matched"] else 1.0

    def tokens(p: dict[str, Any]) -> float:
        return float(p["prompt_tokens"] + p["completion_tokens"])

    intervals = {
        **paired,
        "invalid_rate": bootstrap.ratio_interval(per_row(cand, invalid), per_row(other, invalid), **settings),
        "latency_p50_ms": bootstrap.percentile_interval([p["latency_ms"] for p in cand],
                                                        [p["latency_ms"] for p in other], 50.0, **settings),
        "tokens_per_prediction": bootstrap.ratio_interval(per_row(cand, tokens), per_row(other, tokens), **settings),
    }
    deltas = {}
    for name in mc:
        cv, ov = mc[name], mo.get(name)
        if cv is None or ov is None:
            continue  # log loss and ECE: the other side has no probabilities
        low, high = intervals.get(name) or (None, None)
        has_unit = name in intervals
        deltas[name] = Delta(delta=cv - ov, low=low, high=high, unit="rows" if has_unit else None,
                             units=len(cand) if has_unit else 0)
    return Comparison(against=against, version=version, deltas=deltas)


def rows_digest(keys: list[str]) -> str:
    """md5 of the scored rows' keys in order: two documents with the same digest scored the same rows."""
    return hashlib.md5("\n".join(keys).encode("utf-8")).hexdigest()


def _model_result(ws: Workspace, ref: str, plan: Any, run: PredictResult) -> ModelResult:
    version = plan.version
    curve = []
    if version.format != "prompt" and version.format not in UNTRAINED_FORMATS:
        curve = read_curve(loadable(ws, plan.model.name, version).files)  # already fetched by predict
    return ModelResult.from_version(ref, version, classification_metrics(run.scores), curve)


def side_detail(kind: str, scores: scoring.Scores) -> ClassificationSide:
    """One side's classification detail: its kind (zero-shot, few-shot bm25 k=3, hf...) and scores."""
    ci = lambda v: list(v) if v else None  # noqa: E731
    return ClassificationSide(
        kind=kind, accuracy_ci=ci(scores.accuracy_ci), per_class=list(scores.per_class),
        confusion=[list(row) for row in scores.confusion], macro_f1_ci=ci(scores.macro_f1_ci),
        log_loss_ci=ci(scores.log_loss_ci), ece_ci=ci(scores.ece_ci), invalid_examples=list(scores.invalid_examples))


def majority_detail(ws: Workspace, dataset: str, plan: Any, rows: list[dict[str, Any]]) -> MajorityBaseline | None:
    """The majority-class reference on the scored rows, from the data set's train split."""
    found = majority_of(ws, dataset, plan.task.label, rows, list(plan.task.labels))
    if found is None:
        return None
    s = found.scores
    ci = lambda v: list(v) if v else None  # noqa: E731
    return MajorityBaseline(label=found.label, accuracy=s.accuracy, macro_f1=s.macro_f1,
                            macro_accuracy=s.macro_accuracy, log_loss=s.log_loss, ece=s.ece,
                            accuracy_ci=ci(s.accuracy_ci), macro_f1_ci=ci(s.macro_f1_ci))


def _samples(plan: Any, labelled: dict[str, list[dict[str, Any]]], count: int) -> list[Sample]:
    """The first ``count`` rows: the task's input, each side's raw output, the true label."""
    by_key = dict(zip(plan.keys, plan.rows, strict=True))
    base = labelled.get("baseline")
    return [Sample(prompt=plan.task.render(by_key[p["key"]]), candidate=p["raw_output"], reference=p["label"],
                   baseline=base[i]["raw_output"] if base is not None else None)
            for i, p in enumerate(labelled["candidate"][:count])]


def _stage(progress: StageProgress | None, label: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(f"{label} predict", done, total)
