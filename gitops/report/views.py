"""What the report template shows, computed from :class:`EvalResults`: metric rows with deltas,
sample rows, the training-curve chart. Numbers are formatted here; text from data is escaped by
:mod:`gitops.report.escape` (or, in the template, by the environment's finalize hook)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gitops.eval.gates import format_number
from gitops.eval.results import CurvePoint, Environment, EvalResults
from gitops.report.escape import Safe, cell

# Known metrics: label, which direction is better, unit. Order here is the order in the table.
KNOWN_METRICS: dict[str, tuple[str, str, str]] = {
    "loss": ("Loss", "lower", ""),
    "perplexity": ("Perplexity", "lower", ""),
    "latency_p50_ms": ("Latency p50", "lower", "ms"),
    "latency_p95_ms": ("Latency p95", "lower", "ms"),
    "tokens_per_s": ("Tokens/s", "higher", ""),
    "size_bytes": ("Size", "lower", "bytes"),
}
CHART_MAX_POINTS = 50


@dataclass
class MetricRow:
    name: str            # from data: escaped when rendered
    label: str           # from data for unknown metrics: escaped when rendered
    better: str          # lower, higher or ""
    candidate: str
    baseline: str
    change: str


def metric_rows(results: EvalResults) -> list[MetricRow]:
    """One row per metric of either model: known metrics first, then the rest in document order."""
    cand = results.candidate.metrics
    base = results.baseline.metrics if results.baseline else {}
    names = [m for m in KNOWN_METRICS if m in cand or m in base]
    names += [m for m in list(cand) + list(base) if m not in KNOWN_METRICS and m not in names]
    hinted = _directions_from_gates(results)
    rows = []
    for name in names:
        label, better, unit = KNOWN_METRICS.get(name, (name, hinted.get(name, ""), ""))
        c, b = cand.get(name), base.get(name)
        rows.append(MetricRow(name=name, label=label, better=better, candidate=_value(c, unit),
                              baseline=_value(b, unit) if results.baseline else "—",
                              change=_change(c, b, better, unit)))
    return rows


def _directions_from_gates(results: EvalResults) -> dict[str, str]:
    """An unknown metric's good direction, read from its gates: an upper bound means lower is better."""
    out = {}
    for gate in results.gates:
        out[gate.metric] = "lower" if gate.bound in ("max", "max_increase_pct") else "higher"
    return out


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "bytes":
        return _bytes(value)
    return format_number(value) + (f" {unit}" if unit else "")


def _bytes(value: float) -> str:
    sign, size = ("-" if value < 0 else ""), abs(value)
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or suffix == "GiB":
            return f"{sign}{format_number(size)} {suffix}" if suffix != "B" else f"{sign}{size:,.0f} B"
        size /= 1024
    raise AssertionError("unreachable")


def _change(cand: float | None, base: float | None, better: str, unit: str) -> str:
    """``▼ -0.19 (-1.5%), better``: the arrow is the direction, the word says whether that is good."""
    if cand is None or base is None:
        return ""
    delta = cand - base
    if delta == 0:
        return "= no change"
    arrow = "▲" if delta > 0 else "▼"
    amount = _value(abs(delta), unit)
    text = f"{arrow} {'+' if delta > 0 else '-'}{amount}"
    if base != 0:
        text += f" ({delta / abs(base) * 100:+.1f}%)"
    if better:
        good = (delta < 0) == (better == "lower")
        text += ", better" if good else ", worse"
    return text


def sample_header(results: EvalResults) -> tuple[Safe, int]:
    """The sample table's header and delimiter rows, and its number of columns."""
    cols = ["#", "Prompt", "Candidate " + cell(results.candidate.version, 40)]
    if results.baseline is not None:
        cols.append("Baseline " + cell(results.baseline.version, 40))
    if _has_reference(results):
        cols.append("Reference")
    head = "| " + " | ".join(cols) + " |"
    return Safe(head + "\n|" + "---|" * len(cols)), len(cols)


def sample_rows(results: EvalResults, limit: int | None, count: int | None = None) -> list[Safe]:
    """Escaped table rows for the first ``count`` samples, each text cut to ``limit`` characters."""
    with_base, with_ref = results.baseline is not None, _has_reference(results)
    rows = []
    for i, s in enumerate(results.samples[:count], start=1):
        cells = [str(i), cell(s.prompt, limit), cell(s.candidate, limit)]
        if with_base:
            cells.append(cell(s.baseline, limit) if s.baseline is not None else "—")
        if with_ref:
            cells.append(cell(s.reference, limit) if s.reference is not None else "—")
        rows.append(Safe("| " + " | ".join(cells) + " |"))
    return rows


def _has_reference(results: EvalResults) -> bool:
    return any(s.reference is not None for s in results.samples)


def curve_chart(curve: list[CurvePoint], max_points: int = CHART_MAX_POINTS) -> Safe | None:
    """A Mermaid ``xychart-beta`` of train and eval loss by step, or None with nothing to draw.

    An xychart line needs a value at every x, so a series is drawn only on the steps where every
    drawn series has a value; a sparse eval loss (logged every N steps) is dropped in favour of
    the train loss rather than thinning the train line to the eval steps. Long curves are thinned
    evenly (keeping the last point) to keep the comment short.
    """
    points, series = _drawable(sorted(curve, key=lambda p: p.step))
    if not points:
        return None
    if len(points) > max_points:
        stride = -(-len(points) // max_points)
        points = points[::stride] if points[::stride][-1] is points[-1] else points[::stride] + [points[-1]]
    lines = ["```mermaid", "xychart-beta", '    title "Loss by training step"',
             "    x-axis \"step\" [" + ", ".join(str(p.step) for p in points) + "]",
             '    y-axis "loss"']
    for name in series:
        lines.append("    line [" + ", ".join(f"{getattr(p, name):.4g}" for p in points) + "]")
    lines.append("```")
    return Safe("\n".join(lines))


def chart_legend(curve: list[CurvePoint]) -> str:
    """Which line is which (xychart-beta draws no legend)."""
    _, series = _drawable(sorted(curve, key=lambda p: p.step))
    names = {"train_loss": "train loss", "eval_loss": "eval loss"}
    if len(series) == 2:
        return "First line: train loss; second line: eval loss."
    return f"Line: {names[series[0]]}." if series else ""


def _drawable(curve: list[CurvePoint]) -> tuple[list[CurvePoint], list[str]]:
    both = [p for p in curve if p.train_loss is not None and p.eval_loss is not None]
    train = [p for p in curve if p.train_loss is not None]
    evals = [p for p in curve if p.eval_loss is not None]
    if train and len(both) == len(train):
        return both, ["train_loss", "eval_loss"]
    if train:
        return train, ["train_loss"]
    return (evals, ["eval_loss"]) if evals else ([], [])


def lineage_rows(results: EvalResults) -> list[tuple[str, str | None, str | None]]:
    """(label, candidate value, baseline value) for the lineage table."""
    c, b = results.candidate, results.baseline
    rows = [("Format", _format(c.format, c.quantization), _format(b.format, b.quantization) if b else None)]
    for key, label in (("dataset", "Data set"), ("base_model", "Base model"), ("parent", "Parent"),
                       ("config_hash", "Config hash"), ("commit", "Commit"), ("created_at", "Created"),
                       ("author", "Author")):
        rows.append((label, getattr(c.lineage, key), getattr(b.lineage, key) if b else None))
    rows.append(("md5", c.md5, b.md5 if b else None))
    return rows


def _format(fmt: str, quantization: str | None) -> str:
    return f"{fmt} ({quantization})" if quantization else fmt


def environment_parts(env: Environment) -> list[tuple[Safe, str]]:
    """(label, value) pairs of what is known about where the evaluation ran; unknowns left out."""
    parts: list[tuple[Safe, str]] = [(Safe(""), env.device)]
    for key, label in (("python", "Python"), ("torch", "torch"), ("transformers", "transformers"),
                       ("peft", "peft"), ("ctranslate2", "ctranslate2"), ("gitops", "gitops")):
        if getattr(env, key) is not None:
            parts.append((Safe(label + " "), getattr(env, key)))
    if env.platform:
        parts.append((Safe(""), env.platform))
    return parts


def shortened_strings(results: EvalResults, cell_limit: int | None, text_limit: int | None,
                      count: int | None) -> tuple[bool, bool]:
    """Whether any shown sample text, and any other string from data, is longer than its limit
    (so the report says "long texts cut" only when something was cut)."""
    cut_samples = cell_limit is not None and any(
        len(t) > cell_limit for s in results.samples[:count]
        for t in (s.prompt, s.candidate, s.reference or "", s.baseline or ""))
    cut_text = text_limit is not None and any(len(t) > text_limit for t in _strings(results, skip="samples"))
    return cut_samples, cut_text


def _strings(value: object, skip: str = "") -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _strings(k) + _strings(v)]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    if dataclasses.is_dataclass(value):
        return [t for f in dataclasses.fields(value) if f.name != skip for t in _strings(getattr(value, f.name))]
    return []
