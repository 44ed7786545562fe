"""Classification results documents for the report tests, built from prediction rows by the same
functions ``gitops eval`` uses (scoring, the paired comparison), so no number is typed in by hand."""

from __future__ import annotations

from gitops.eval.results import DatasetInfo, Environment, EvalResults, GenerationInfo, Lineage, ModelResult
from gitops.predict import evaluation, scoring

LABELS = ["neg", "neu", "pos"]


def predictions(hits: list[int], latency: float = 5.0) -> list[dict]:
    """One row per entry: true labels cycle through LABELS; a hit predicts it, a miss the next label
    (and every third miss matched no label: an invalid output scored as the fallback)."""
    rows = []
    for i, hit in enumerate(hits):
        label = LABELS[i % len(LABELS)]
        rows.append({"key": f"r{i}", "label": label,
                     "prediction": label if hit else LABELS[(i + 1) % len(LABELS)],
                     "matched": bool(hit) or i % 3 != 0, "raw_output": f"out {i}", "prompt_tokens": 20 + i,
                     "completion_tokens": 2, "latency_ms": latency + i})
    return rows


def _model(version: str, rows: list[dict], fmt: str = "prompt") -> ModelResult:
    metrics = evaluation.classification_metrics(scoring.score(rows, LABELS))
    return ModelResult(ref=f"sentiment@{version}", version=version, format=fmt, md5=f"md5-{version}",
                       lineage=Lineage(base_model="base@v1"), metrics=metrics)


def classification_results(version: str, base_version: str | None, hits: list[int], base_hits: list[int] | None,
                           kind: str = "zero-shot", dataset: str = "reviews@v1",
                           parent: tuple[str, list[int]] | None = None) -> EvalResults:
    """``sentiment@version`` (with ``hits``) against ``sentiment@base_version`` (with ``base_hits``),
    and against a ``parent`` (version, hits) when given (a ct2 candidate's source)."""
    from gitops.eval.results import ClassificationInfo

    cand = predictions(hits)
    base = predictions(base_hits) if base_hits is not None else None
    sides = {"candidate": evaluation.side_detail(kind, scoring.score(cand, LABELS))}
    comparisons = []
    baseline = None
    if base is not None and base_version is not None:
        baseline = _model(base_version, base)
        sides["baseline"] = evaluation.side_detail("few-shot bm25 k=3", scoring.score(base, LABELS))
        comparisons.append(evaluation.compare_predictions("baseline", base_version, cand, base))
    parent_model = None
    if parent is not None:
        rows = predictions(parent[1])
        parent_model = _model(parent[0], rows, "hf")
        sides["parent"] = evaluation.side_detail("hf", scoring.score(rows, LABELS))
        comparisons.append(evaluation.compare_predictions("parent", parent[0], cand, rows))
    info = ClassificationInfo(labels=list(LABELS), rows_md5=evaluation.rows_digest([r["key"] for r in cand]),
                              **sides)
    return EvalResults(created_at="2026-12-01T12:00:00Z", model="sentiment",
                       dataset=DatasetInfo(ref=dataset, split="test", rows=len(cand)),
                       generation=GenerationInfo(max_new_tokens=3, batch_size=16, prompt_words=0),
                       candidate=_model(version, cand), baseline=baseline, parent=parent_model, comparisons=comparisons,
                       classification=info, environment=Environment(device="cpu", threads=2))

