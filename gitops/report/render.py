"""Render evaluation results into the Markdown a reviewer reads on a pull request.

The template ships in the package (``templates/report.md.j2``) and renders from the
:class:`EvalResults` dataclasses. Every ``{{ value }}`` in the template passes through a finalize
hook that escapes it unless it is :class:`Safe` (already escaped or written by us), so a field
the template forgets to escape is still inert.

GitHub rejects a comment over 65,536 characters. :func:`render_report` first renders everything;
when that is too long it shortens in steps (fewer samples, then shorter sample texts, then shorter
names and no chart) and says so in the report, and as a last resort keeps only the verdict lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.eval.gates import describe_gate
from gitops.eval.results import EvalResults, GateResult
from gitops.report import classview, views
from gitops.report.escape import Safe, inline, marker_token

GITHUB_COMMENT_LIMIT = 65536
MARKER_PREFIX = "<!-- gitops-report "
MIN_CHARS = 1000
_MARKER_RE = re.compile(r"^<!-- gitops-report model=(\S+) alias=(\S+) -->$")


class ReportError(GitopsError):
    """The report cannot be rendered as asked (no results, a limit too small to hold a verdict)."""


@dataclass
class RenderedReport:
    """The comment to post (``markdown``, within the limit) and the complete report."""

    markdown: str
    full: str | Callable[[], str] = field(repr=False)  # the complete report, rendered on first use
    truncated: bool = False
    samples_shown: int = 0
    samples_total: int = 0
    verdict: str = "pass"         # pass when every section passes its gates
    icon: str = "✅"              # ❌ a gate failed, ⚠️ a warning (accuracy significantly worse), ⚪ not judged

    @property
    def full_markdown(self) -> str:
        """Everything, nothing shortened. Rendered only when asked for: with thousands of long
        samples it is megabytes, and most callers only post the comment."""
        if callable(self.full):
            self.full = self.full()
        return self.full

    @property
    def chars(self) -> int:
        return comment_length(self.markdown)


@dataclass(frozen=True)
class _Level:
    """How much of the report to show; later levels give up more to fit the limit."""

    cell: int | None              # characters per sample text
    text: int | None              # characters per other string from data (names, lineage, messages)
    curve: bool = True
    detail: bool = True           # metrics, gates, lineage, samples, environment


_FULL = _Level(cell=None, text=None)
_SHORTER = (_Level(cell=1000, text=None), _Level(cell=200, text=200), _Level(cell=80, text=60, curve=False))
_MINIMAL = _Level(cell=0, text=60, curve=False, detail=False)
_ENOUGH_SAMPLES = 10  # stop giving up detail once this many samples fit


def marker(model: str, alias: str | None) -> str:
    """The hidden first line that identifies a report, so a sticky comment can find and replace it.

    Values are reduced to characters that cannot end the HTML comment; a missing alias is ``-``
    (never a valid alias name). Data in the report body is escaped, so it cannot forge this line.
    """
    return f"{MARKER_PREFIX}model={marker_token(model)} alias={marker_token(alias) if alias else '-'} -->"


def report_marker(results: list[EvalResults]) -> str:
    """The marker of a report over several results: their distinct models and aliases, comma-joined."""
    models = list(dict.fromkeys(r.model for r in results))
    aliases = list(dict.fromkeys(r.alias for r in results if r.alias))
    return marker(",".join(models), ",".join(aliases) or None)


def find_marker(body: str) -> tuple[str, str | None] | None:
    """``(model, alias)`` of a report's marker when ``body`` starts with one, else None."""
    match = _MARKER_RE.fullmatch(body.split("\n", 1)[0])
    if not match:
        return None
    return match.group(1), None if match.group(2) == "-" else match.group(2)


def comment_length(text: str) -> int:
    """Characters as GitHub may count them: UTF-16 code units, which is never fewer than Python's
    code points (an emoji counts 2), so staying under this keeps us under GitHub's cap."""
    return len(text.encode("utf-16-le")) // 2


def render_report(results: list[EvalResults], *, max_chars: int = GITHUB_COMMENT_LIMIT,
                  full_report_hint: str | None = None) -> RenderedReport:
    """Render one report for one or more results (one section per candidate, one marker).

    ``markdown`` is guaranteed to be at most ``max_chars`` (see :func:`comment_length`);
    ``full_markdown`` holds everything. ``full_report_hint`` (e.g. "The full report is in the
    workflow run's artifacts.") is added to the note shown when the comment was shortened.
    """
    if not results:
        raise ReportError("no results to report on; pass at least one results file")
    if max_chars < MIN_CHARS:
        raise ReportError(f"the character limit {max_chars} is too small; use at least {MIN_CHARS}")
    total = sum(len(r.samples) for r in results)
    verdict = "pass" if all(r.verdict == "pass" for r in results) else "fail"
    icon = overall_icon(results)
    # Escaping never shortens text (beyond dropping carriage returns), so when the raw sample texts
    # alone exceed the limit, rendering everything just to measure it would be wasted work.
    raw = sum(len(t) - t.count("\r") for r in results for s in r.samples
              for t in (s.prompt, s.candidate, s.reference or "", s.baseline or ""))
    def render_full() -> str:
        return _render(results, _FULL, None, None)

    full: str | Callable[[], str] = render_full  # rendered here only when it may fit, else on first use
    if raw <= max_chars:
        full = render_full()
        if comment_length(full) <= max_chars:
            return RenderedReport(full, full, False, total, total, verdict, icon)
    best: tuple[int, str] | None = None
    for level in _SHORTER:
        fitted = _fit_samples(results, level, max_chars, full_report_hint)
        if fitted and (best is None or fitted[0] > best[0]):
            best = fitted
        if best and best[0] >= min(_ENOUGH_SAMPLES, max(len(r.samples) for r in results)):
            break
    if best is None:
        return RenderedReport(_minimal(results, max_chars, full_report_hint), full, True, 0, total, verdict, icon)
    shown = sum(min(best[0], len(r.samples)) for r in results)
    return RenderedReport(best[1], full, True, shown, total, verdict, icon)


def overall_icon(results: list[EvalResults]) -> str:
    """❌ when a gate failed, ✅ when every section is ✅, ⚪ when none was judged, else ⚠️."""
    icons = {views.headline(r)[0] for r in results}
    if views.FAIL in icons:
        return views.FAIL
    if len(icons) == 1:
        return icons.pop()
    return views.WARN


def _fit_samples(results: list[EvalResults], level: _Level, max_chars: int,
                 hint: str | None) -> tuple[int, str] | None:
    """The most samples per section (and the markdown) that fit at ``level``; None if none fit.
    Rows are escaped once and reused, so the binary search costs only template joins."""
    rows = [views.sample_rows(r, level.cell) for r in results]
    text = _render(results, level, 0, hint, rows)
    if comment_length(text) > max_chars:
        return None  # not even without samples: the next level must give up more
    low, high, best = 1, max(len(r) for r in rows), (0, text)
    while low <= high:
        k = (low + high) // 2
        text = _render(results, level, k, hint, rows)
        if comment_length(text) <= max_chars:
            best, low = (k, text), k + 1
        else:
            high = k - 1
    return best


def _minimal(results: list[EvalResults], max_chars: int, hint: str | None) -> str:
    """Marker, verdict lines and the note; cut at a line boundary if even that is too long."""
    text = _render(results, _MINIMAL, 0, hint)
    if comment_length(text) <= max_chars:
        return text
    note = f"\n… {len(results)} results in all; the rest of this report did not fit in a comment.\n"
    budget = max_chars - comment_length(note)
    lines, used = [], 0
    for line in text.split("\n"):
        if used + comment_length(line) + 1 > budget:
            break
        lines.append(line)
        used += comment_length(line) + 1
    return "\n".join(lines) + note


def _render(results: list[EvalResults], level: _Level, count: int | None, hint: str | None,
            rows: list[list[Safe]] | None = None) -> str:
    if rows is None:
        rows = [views.sample_rows(r, level.cell, count) for r in results]
    combined = classview.combine(results, level.text) if level.detail else classview.Combined()
    sections = [_section(r, level, r_rows[:count] if count is not None else r_rows, i in combined.joined)
                for i, (r, r_rows) in enumerate(zip(results, rows))]
    shown = sum(len(s["rows"]) for s in sections)
    total = sum(len(r.samples) for r in results)
    cuts = [views.shortened_strings(r, level.cell, level.text, count) for r in results]
    failing = sum(r.verdict == "fail" for r in results)
    context = {
        "marker": Safe(report_marker(results)),
        "multi": len(results) > 1,
        "h": Safe("###" if len(results) > 1 else "##"),
        "failing": failing,
        "overall": Safe(overall_icon(results)),
        "sections": sections,
        "level": level,
        "shortened": level is not _FULL,
        "note": _note(level, shown, total, any(c[0] for c in cuts), any(c[1] for c in cuts), hint,
                      any(classview.is_classification(r) for r in results)),
        "text_limit": level.text,
        "combined": combined,
        "cls_header": classview.HEADER,
    }
    return _template().render(context)


def _note(level: _Level, shown: int, total: int, cut_samples: bool, cut_text: bool, hint: str | None,
          classes: bool = False) -> Safe:
    """The sentence that tells the reader what this comment leaves out."""
    parts = [f"{shown:,} of {total:,} sample completions shown"]
    if cut_samples:
        parts.append(f"sample texts cut to {level.cell:,} characters")
    if cut_text:
        parts.append(f"other long texts cut to {level.text:,} characters")
    if not level.curve and level.detail:
        parts.append("training curves left out")
        if classes:
            parts.append("per-class scores left out")
    if not level.detail:
        parts.append("only the verdicts kept")
    text = "⚠️ **Shortened to fit a GitHub comment:** " + ", ".join(parts) + "."
    return Safe(text + (" " + inline(hint, 300) if hint else ""))


def _section(r: EvalResults, level: _Level, rows: list[Safe], joined: bool = False) -> dict[str, Any]:
    passed = sum(g.passed for g in r.gates)
    cls = None
    if classview.is_classification(r):  # the variants table replaces the perplexity metrics
        cls = {"table": None if joined else classview.table(r, level.text),
               "parent_note": classview.parent_note(r, level.text) if joined else None,
               "details": classview.details(r, level.text) if level.curve else [],
               "too_many": classview.too_many_labels(r)}
    header, _columns = views.sample_header(r)
    chart = views.curve_chart(r.candidate.training_curve) if level.curve else None
    icon, words = views.headline(r)
    return {
        "r": r,
        "icon": Safe(icon),
        "headline": words,
        "passed": passed,
        "skipped": sum(g.skipped for g in r.gates),
        "metrics": views.metric_rows(r),
        "parent_metrics": views.metric_rows(r, "parent") if r.parent is not None else [],
        "change_header": Safe(f"Change [{r.statistics.confidence:.0%} CI]" if r.comparisons else "Change"),
        "conversion": views.conversion_line(r),
        "judge": views.judge_line(r),
        "interval_note": None if cls else views.interval_note(r),
        "cls": cls,
        "gates": [_gate_row(g) for g in r.gates],
        "chart": chart,
        "legend": views.chart_legend(r.candidate.training_curve) if chart else "",
        "sample_header": header,
        "lineage": views.lineage_rows(r),
        "environment": views.environment_parts(r.environment),
        "rows": rows,
    }


def _gate_row(gate: GateResult) -> tuple[GateResult, str, str]:
    """The gate as words and the detail without repeating them (the message starts with the words)."""
    what = describe_gate(gate.metric, gate.bound, gate.threshold, gate.significant)
    detail = gate.message[len(what) + 2:] if gate.message.startswith(what + ": ") else gate.message
    return gate, what, detail


def report_from_files(paths: list[str | Path], *, max_chars: int = GITHUB_COMMENT_LIMIT,
                      full_report_hint: str | None = None) -> RenderedReport:
    """Load results files and render them into one report: the one call the CLI (and the code that
    posts the sticky PR comment) needs."""
    if not paths:
        raise ReportError("no results files given")
    results = [EvalResults.load(p) for p in paths]
    return render_report(results, max_chars=max_chars, full_report_hint=full_report_hint)


@lru_cache(maxsize=1)
def _template() -> Any:
    """The compiled template (Jinja loads lazily: `gitops show` never pays for it)."""
    import jinja2

    @jinja2.pass_context
    def finalize(ctx: Any, value: Any) -> Any:
        # Escape every printed value unless it is Safe; None prints as a dash.
        if value is None:
            return "—"
        return inline(value, ctx.get("text_limit"))

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gitops.report", "templates"),
        autoescape=False,  # Markdown, not HTML: escaping is done by `finalize` above
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters["num"] = lambda v: Safe(views.format_number(v))
    return env.get_template("report.md.j2")
