"""``gitops compare``: several variants of one classification model, side by side, on the same rows.

Each variant predicts the same rows of the same data set version split, rendered by the same task
template (a prompt version adds its own template and examples); the table gives accuracy with its
95% bootstrap interval, the paired interval of its difference from the first variant, macro
accuracy, the invalid-output rate, p50 latency and tokens per prediction. Markdown for people (and
the PR report), JSON for machines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitops.core import refs
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError
from gitops.predict import scoring
from gitops.predict.pipeline import DEFAULT_BATCH, Progress, predict
from gitops.predict.pool import BackendPool

MAX_VARIANTS = 16


@dataclass
class VariantRow:
    ref: str
    kind: str          # prompt (retrieval type, k) or the version's format; ", constrained" when it was
    scores: scoring.Scores
    delta_ci: tuple[float, float] | None = None   # accuracy minus the first variant's, paired

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, **self.scores.to_dict(),
                "delta_vs_first_ci": list(self.delta_ci) if self.delta_ci else None}


@dataclass
class Comparison:
    dataset: str
    split: str
    rows: int
    variants: list[VariantRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "rows": self.rows,
                "variants": [v.to_dict() for v in self.variants]}

    def markdown(self) -> str:
        lines = [f"Classification on {self.dataset} ({self.split}, {self.rows} rows); 95% bootstrap intervals.",
                 "", "| variant | kind | accuracy | vs first | macro acc. | invalid | p50 latency | tokens |",
                 "|---|---|---|---|---|---|---|---|"]
        for i, v in enumerate(self.variants):
            s = v.scores
            ci = f" [{s.accuracy_ci[0]:.1%}, {s.accuracy_ci[1]:.1%}]" if s.accuracy_ci else ""
            delta = "—" if i == 0 else (f"[{v.delta_ci[0]:+.1%}, {v.delta_ci[1]:+.1%}]" if v.delta_ci else "n/a")
            lines.append(f"| {v.ref} | {v.kind} | {s.accuracy:.1%}{ci} | {delta} | {s.macro_accuracy:.1%} | "
                         f"{s.invalid_rate:.1%} | {s.latency_p50_ms:.1f} ms | {s.tokens_per_prediction:.1f} |")
        return "\n".join(lines) + "\n"


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
    dataset = dataset or _default_dataset(ws, variant_refs)
    with BackendPool(device, threads) as pool:
        runs = [predict(ws, ref, dataset, split=split, batch_size=batch_size, limit=limit, progress=progress,
                        constrain=constrain, pool=pool) for ref in variant_refs]
    first = runs[0].predictions
    out = Comparison(runs[0].dataset, split, runs[0].rows)
    for i, run in enumerate(runs):
        _, version = ws.registry().resolve(run.ref)
        kind = variant_kind(version) + (", constrained" if run.constrained else "")
        out.variants.append(VariantRow(run.ref, kind, run.scores,
                                       None if i == 0 else scoring.accuracy_delta(run.predictions, first)))
    return out


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
    return "zero-shot" if r.get("type", "none") == "none" else f"few-shot {r['type']} k={r.get('k')}"


def _default_dataset(ws: Workspace, variant_refs: list[str]) -> str:
    """The data set the first variant that names one names (a prompt's retrieval set, a fine-tune's)."""
    reg = ws.registry()
    for ref in variant_refs:
        _, version = reg.resolve(ref)
        if version.dataset:
            return version.dataset
    raise ConfigError("none of the variants names a data set; pass --dataset NAME@vN")
