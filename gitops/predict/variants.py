"""``gitops compare``: several variants of one classification model, side by side, on the same rows.

Each variant predicts the same rows of the same data set version split, rendered by the same task
template (a prompt version adds its own template and examples); the table gives accuracy with its
95% bootstrap interval, the paired interval of its difference from the first variant, macro-F1,
log loss and expected calibration error (each with its interval), macro accuracy, the
invalid-output rate, p50 latency and tokens per prediction. A reference row scores always
answering the most frequent label of the train split (the majority class). A variant whose outputs
matched no label more than 20% of the time is flagged, with three of its raw outputs under the
table. Markdown for people (and the PR report), JSON for machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gitops.core import refs
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError
from gitops.predict import scoring
from gitops.predict.batch import DEFAULT_BATCH, MAX_BATCH, Progress, plan_predict, predict
from gitops.predict.pool import BackendPool

MAX_VARIANTS = 16


@dataclass
class VariantRow:
    ref: str
    kind: str          # prompt (retrieval type, k) or the version's format; ", constrained" when it was
    scores: scoring.Scores
    delta_ci: tuple[float, float] | None = None   # accuracy minus the first variant's, paired
    deltas: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # every metric's, paired

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, **self.scores.to_dict(), "flagged": self.scores.flagged,
                "delta_vs_first_ci": list(self.delta_ci) if self.delta_ci else None,
                "deltas_vs_first": {k: list(v) if v else None for k, v in self.deltas.items()}}


@dataclass
class Majority:
    """The reference row: always answering ``label``, the most frequent label of the train split."""

    label: str
    scores: scoring.Scores

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, **self.scores.to_dict()}


HEADER = ("| variant | kind | accuracy | vs first | macro-F1 | log loss | ECE | macro acc. | invalid | p50 latency "
          "| tokens |\n|---|---|---|---|---|---|---|---|---|---|---|")


@dataclass
class Comparison:
    dataset: str
    split: str
    rows: int
    variants: list[VariantRow] = field(default_factory=list)
    majority: Majority | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "rows": self.rows,
                "variants": [v.to_dict() for v in self.variants],
                "majority_baseline": self.majority.to_dict() if self.majority else None}

    def markdown(self) -> str:
        lines = [f"Classification on {self.dataset} ({self.split}, {self.rows} rows); 95% bootstrap intervals.",
                 "", HEADER]
        for i, v in enumerate(self.variants):
            delta = "—" if i == 0 else (f"[{v.delta_ci[0]:+.1%}, {v.delta_ci[1]:+.1%}]" if v.delta_ci else "n/a")
            lines.append(_line(v.ref, v.kind, v.scores, delta))
        if self.majority is not None:
            m = self.majority
            lines.append(_line(f'always "{m.label}"', "majority class", m.scores, "—", costs=False))
        notes = [f"⚠️ {v.ref} matched no label in {v.scores.invalid_rate:.1%} of its outputs (over "
                 f"{scoring.INVALID_FLAG:.0%}): its accuracy is mostly the fallback's. Three of its raw outputs: "
                 + ", ".join(json.dumps(o) for o in v.scores.invalid_examples) + "."
                 for v in self.variants if v.scores.flagged]
        if self.majority is not None:
            notes.append(f'Majority class: always answering "{self.majority.label}", the most frequent label of the '
                         "train split (its probabilities: the train split's label frequencies).")
        notes.append("macro-F1: mean F1 over the labels; log loss: mean -ln p(true label); ECE: expected "
                     "calibration error over 10 confidence bins.")
        return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def _line(ref: str, kind: str, s: scoring.Scores, delta: str, *, costs: bool = True) -> str:
    flag = "⚠️ " if s.flagged else ""
    return (f"| {ref} | {kind} | {s.accuracy:.1%}{_ci(s.accuracy_ci)} | {delta} | {s.macro_f1:.1%}{_ci(s.macro_f1_ci)} "
            f"| {_num(s.log_loss, s.log_loss_ci)} | {_pct(s.ece, s.ece_ci)} | {s.macro_accuracy:.1%} | "
            f"{flag}{s.invalid_rate:.1%} | " + (f"{s.latency_p50_ms:.1f} ms | {s.tokens_per_prediction:.1f} |"
                                                 if costs else "— | — |"))


def _ci(ci: tuple[float, float] | None) -> str:
    return f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else ""


def _num(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _pct(value: float | None, ci: tuple[float, float] | None) -> str:
    return "n/a" if value is None else f"{value:.1%}{_ci(ci)}"


def compare_variants(ws: Workspace, variant_refs: list[str], *, dataset: str | None = None, split: str = "test",
                     batch_size: int = DEFAULT_BATCH, limit: int | None = None, device: str = "cpu",
                     threads: int | None = None, progress: Progress | None = None,
                     constrain: str | None = None) -> Comparison:
    """Predict the same rows with each of ``variant_refs`` (versions of one model) and score them;
    variants on the same weights share one loaded backend. ``constrain`` (labels or none) overrides
    every variant's own decoding."""
    if not variant_refs or len(variant_refs) > MAX_VARIANTS:
        raise ConfigError(f"compare 1 to {MAX_VARIANTS} variants (MODEL@A MODEL@B ...)")
    parsed = [refs.parse_ref(r, require_ref=True) for r in variant_refs]
    if len({p.name for p in parsed}) > 1:
        raise ConfigError("compare variants of one model: " + ", ".join(variant_refs) + " name several models")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be from 1 to {MAX_BATCH}")
    dataset = dataset or _default_dataset(ws, variant_refs)
    # Every variant resolved and its rows read and checked before the first model opens: a bad last
    # reference must not cost the predictions of the ones before it.
    plans = [plan_predict(ws, ref, dataset, split, limit=limit, constrain=constrain) for ref in variant_refs]
    with BackendPool(device, threads) as pool:
        runs = [predict(ws, plan.ref, dataset, split=split, batch_size=batch_size, limit=limit, progress=progress,
                        constrain=constrain, pool=pool, plan=plan) for plan in plans]
    first = runs[0].predictions
    labels = runs[0].scores.labels
    task = ws.registry().model(parsed[0].name).classification
    out = Comparison(runs[0].dataset, split, runs[0].rows,
                     majority=majority_of(ws, runs[0].dataset, task.label, first, labels) if task else None)
    for i, run in enumerate(runs):
        _, version = ws.registry().resolve(run.ref)
        kind = variant_kind(version) + (", constrained" if run.constrained else "")
        paired = {} if i == 0 else scoring.deltas(run.predictions, first, labels)
        out.variants.append(VariantRow(run.ref, kind, run.scores, paired.get("accuracy"), paired))
    return out


def majority_of(ws: Workspace, dataset: str, label_column: str, predictions: list[dict[str, Any]],
                labels: list[str]) -> Majority | None:
    """The majority-class reference over ``predictions``' rows, from ``dataset``'s train split (None
    when it has no labelled train row, or no row here is labelled)."""
    raw = [r.get(label_column) for r in batches.read_rows(ws, dataset, "train")]
    values = [str(v) for v in raw if v is not None and str(v).strip() and str(v) in labels]
    if not values or not any(p.get("label") is not None for p in predictions):
        return None
    label, scores = scoring.majority_baseline(values, predictions, labels)
    return Majority(label, scores)


def variant_kind(version: Any) -> str:
    """What a variant is, for the tables: zero-shot, few-shot TYPE k=K (a prompt version), a head's
    shape, or its format."""
    if version.format == "head":  # a classification head on the frozen base: its shape and pooling
        h = (version.config or {}).get("head") or {}
        lora = "LoRA + " if ((version.config or {}).get("adapter") or {}).get("type") == "lora" else ""
        return f"{lora}head {h.get('type', 'linear')}, {h.get('pooling', 'last')} of layer {h.get('layer', -1)}"
    if version.format != "prompt":
        return version.format
    r = (version.config or {}).get("retrieval") or {}
    kind = "zero-shot" if r.get("type", "none") == "none" else f"few-shot {r['type']} k={r.get('k')}"
    return kind + (", calibrated" if (version.config or {}).get("calibrate") else "")


def _default_dataset(ws: Workspace, variant_refs: list[str]) -> str:
    """The data set the first variant that names one names (a prompt's retrieval set, a fine-tune's);
    every reference is resolved, so a missing one is named before any other work."""
    reg = ws.registry()
    versions = [reg.resolve(ref)[1] for ref in variant_refs]
    for version in versions:
        if version.dataset:
            return version.dataset
    raise ConfigError("none of the variants names a data set; pass --dataset NAME@vN")
