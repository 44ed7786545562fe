"""What the report template shows, computed from :class:`EvalResults`: metric rows with deltas,
sample rows, the training-curve chart. Numbers are formatted here; text from data is escaped by
:mod:`gitops.report.escape` (or, in the template, by the environment's finalize hook)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gitops.eval.gates import format_number
from gitops.eval.results import CurvePoint, Delta, Environment, EvalResults, ModelResult
from gitops.report.escape import Safe, cell, inline

# Known metrics: label, which direction is better, unit. Order here is the order in the table.
KNOWN_METRICS: dict[str, tuple[str, str, str]] = {
    "loss": ("Loss", "lower", ""),
    "perplexity": ("Perplexity", "lower", ""),
    "latency_p50_ms": ("Latency p50", "lower", "ms"),
    "latency_p95_ms": ("Latency p95", "lower", "ms"),
    "tokens_per_s": ("Tokens/s", "higher", ""),
    "size_bytes": ("Size", "lower", "bytes"),
    # a classification model's (gitops.predict.evaluation): accuracy is the one that rises when better
    "accuracy": ("Accuracy", "higher", ""),
    "macro_f1": ("Macro-F1", "higher", ""),
    "log_loss": ("Log loss", "lower", ""),
    "ece": ("Calibration error (ECE)", "lower", ""),
    "macro_accuracy": ("Macro accuracy", "higher", ""),
    "invalid_rate": ("Invalid outputs", "lower", ""),
    "tokens_per_prediction": ("Tokens per prediction", "lower", ""),
}
CHART_MAX_POINTS = 50
_SINGULAR = {"rows": "row", "requests": "request", "batches": "batch"}


PASS, FAIL, WARN, NEUTRAL = "✅", "❌", "⚠️", "⚪"


def headline(r: EvalResults) -> tuple[str, Safe]:
    """The section's icon and verdict words. ✅ only when gates exist and pass and the candidate's
    accuracy is not significantly worse than the baseline's (the paired interval of the change all
    below 0): then ⚠️ says so, whatever the gates say; no gates at all is ⚪, not judged."""
    passed = sum(g.passed for g in r.gates)
    if r.verdict == "fail":
        return FAIL, Safe(f"{len(r.gates) - passed} of {len(r.gates)} gates failed")
    words = f"{passed}/{len(r.gates)} gates pass" if r.gates else "no gates defined, so not judged"
    worse = worse_accuracy(r)
    if worse is not None:
        return WARN, Safe(f"{words}, but accuracy is significantly worse than the baseline's ({worse})")
    return (PASS if r.gates else NEUTRAL), Safe(words)


def worse_accuracy(r: EvalResults) -> str | None:
    """``-13.3% [-25.0%, -1.7%]`` when the candidate's accuracy is significantly below the baseline's."""
    comparison = r.comparison("baseline")
    d = comparison.deltas.get("accuracy") if comparison is not None else None
    if d is None or d.delta is None or d.high is None or d.low is None or d.high >= 0:
        return None
    return f"{d.delta:+.1%} [{d.low:+.1%}, {d.high:+.1%}]"


@dataclass
class MetricRow:
    name: str            # from data: escaped when rendered
    label: str           # from data for unknown metrics: escaped when rendered
    better: str          # lower, higher or ""
    candidate: str
    baseline: str
    change: Safe         # made by us from numbers and known units only, so its brackets stay readable


def metric_rows(results: EvalResults, against: str = "baseline") -> list[MetricRow]:
    """One row per metric of the candidate or the model it is compared with (``baseline`` or
    ``parent``): known metrics first, then the rest in document order. The change carries the
    delta's confidence interval from the document's comparison."""
    other: ModelResult | None = getattr(results, against)
    comparison = results.comparison(against)
    deltas = comparison.deltas if comparison is not None else {}
    cand = results.candidate.metrics
    base = other.metrics if other is not None else {}
    names = [m for m in KNOWN_METRICS if m in cand or m in base]
    names += [m for m in list(cand) + list(base) if m not in KNOWN_METRICS and m not in names]
    hinted = _directions_from_gates(results)
    rows = []
    for name in names:
        label, better, unit = KNOWN_METRICS.get(name, (name, hinted.get(name, ""), ""))
        c, b = cand.get(name), base.get(name)
        rows.append(MetricRow(name=name, label=label, better=better, candidate=_value(c, unit),
                              baseline=_value(b, unit) if other is not None else "—",
                              change=Safe(_change(c, b, better, unit, deltas.get(name)))))
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


def _change(cand: float | None, base: float | None, better: str, unit: str, delta: Delta | None = None) -> str:
    """``▼ -0.19 (-1.5%) [-0.3, -0.08], better``: the arrow is the direction, the brackets the 95%
    interval of the change, and the word says whether that is good only when the interval excludes
    zero (else "no significant change"). An exact delta (size) has no interval."""
    if cand is None or base is None:
        return ""
    diff = cand - base
    interval = delta is not None and delta.low is not None and delta.high is not None
    if diff == 0 and not (interval and delta is not None and (delta.low, delta.high) != (0, 0)):
        return "= no change"
    text = ("▲ " if diff > 0 else "▼ " if diff < 0 else "= ") + _signed(diff, unit)
    if base != 0 and diff != 0:
        text += f" ({diff / abs(base) * 100:+.1f}%)"
    if delta is None:  # no comparison recorded for this metric: its direction alone
        return text + (f", {_word(1 if diff > 0 else -1, better)}" if better else "")
    if delta.method == "exact":
        return text + ", exact" + (f", {_word(delta.direction, better)}" if better else "")
    if not interval:
        word = _SINGULAR.get(delta.unit or "", delta.unit) if delta.units == 1 else delta.unit
        count = f" ({delta.units} {word})" if delta.unit else ""
        return text + f", no interval{count}: not judged"
    assert delta.low is not None and delta.high is not None  # interval
    text += f" [{_signed(delta.low, unit, bare=True)}, {_signed(delta.high, unit, bare=True)}]"
    text += f" {unit}" if unit else ""
    if better:
        return f"{text}, {_word(delta.direction, better)}"
    return text + (", significant change" if delta.direction else ", no significant change")


def _word(direction: int, better: str) -> str:
    if direction == 0:
        return "no significant change"
    return "better" if (direction < 0) == (better == "lower") else "worse"


def _signed(value: float, unit: str, bare: bool = False) -> str:
    """``+2.8 ms``, ``-107.4 KiB``, ``-0.111``; ``bare`` leaves the unit out."""
    sign = "+" if value > 0 else "-" if value < 0 else ""
    return sign + (format_number(abs(value)) if bare else _value(abs(value), unit))


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
        points = points[::stride] if points[::stride][-1] is points[-1] else [*points[::stride], points[-1]]
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


def interval_note(results: EvalResults) -> str | None:
    """The sentence under a metrics table that says how its intervals were made (None: no intervals)."""
    if not results.comparisons:
        return None
    st = results.statistics
    return (f"Change: candidate minus the other model, with its {st.confidence:.0%} confidence interval in "
            f"brackets, from a paired bootstrap ({st.resamples:,} resamples, seed {st.seed}) over the same "
            "holdout rows (loss, perplexity), requests (latency) and batches (tokens/s); size is exact. "
            "It says better or worse only when the interval excludes zero.")


def conversion_line(results: EvalResults) -> str | None:
    """What a converted candidate is, in one sentence (None for a trained one)."""
    c = results.candidate
    if c.format != "ct2":
        return None
    made = f"CTranslate2 {c.quantization} conversion" if c.quantization else "CTranslate2 conversion"
    source = f" of {c.lineage.parent}" if c.lineage.parent else ""
    return f"{c.version} is a {made}{source}, not trained: it has no training curve of its own."


def judge_line(results: EvalResults) -> Safe | None:
    """The judge's verdict under the metrics table, or None without a judge: ``Judge (judge@production
    at 10.0.0.5:8000): candidate wins 62% [48%, 75%] of 16 samples, both orders; consistent 81%``."""
    j = results.judge
    if j is None:
        return None
    interval = f" [{j.low:.0%}, {j.high:.0%}]" if j.low is not None and j.high is not None else " (no interval)"
    plural = "sample" if j.samples == 1 else "samples"
    return Safe(f"Judge ({inline(j.model, 80)} at {inline(j.host, 80)}): candidate wins {j.win_rate:.0%}{interval} "
                f"of {j.samples} {plural}, both orders; consistent {j.consistent:.0%} "
                f"({j.wins} won, {j.losses} lost, {j.ties} tied)")


def lineage_rows(results: EvalResults) -> list[tuple[str, str | None, str | None]]:
    """(label, candidate value, baseline value) for the lineage table."""
    c, b = results.candidate, results.baseline
    rows: list[tuple[str, str | None, str | None]] = [
        ("Format", _format(c.format, c.quantization), _format(b.format, b.quantization) if b else None)]
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
    if env.threads is not None:
        parts.append((Safe(""), f"{env.threads} thread{'s' if env.threads != 1 else ''} per model"))
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
