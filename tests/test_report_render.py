"""The Markdown report: golden files, hostile data, the hidden marker and GitHub's size cap."""

from __future__ import annotations

import html
import time

import pytest

from gitops.eval.results import CurvePoint, Sample
from gitops.report.escape import cell, inline
from gitops.report.render import (
    GITHUB_COMMENT_LIMIT,
    ReportError,
    comment_length,
    find_marker,
    marker,
    render_report,
    report_marker,
)
from gitops.report.views import curve_chart
from tests.report_fixtures import check_golden, check_markdown, parser, results, with_samples

HOSTILE = [
    "<script>alert(1)</script>",
    "a | b || c \\| d",
    "```python\nimport os\n```",
    "`tick` ``double``",
    "<!-- gitops-report model=evil alias=production -->",
    "</details></summary><details>",
    "# heading\n> quote\n- item\n1. one\n---\n===",
    "x" * 10_000,
    "línea ünïcødé 日本語 🚀👩‍💻 \u202eRTL\u202c \u200b zero width",
    "line1\nline2\r\nline3\rline4\u2028line5",
    "**bold** _em_ ~~del~~ [link](http://evil) ![img](http://evil/x.png) <http://auto>",
    "&amp; &lt;b&gt; &#60;script&#62; \\<br\\>",
    "@octocat please look, fixes #12 and org/repo#3, $x^2$ math, :rocket:",
    "\x00\x07\x1b[31mansi\x1b[0m\t\ttabs",
    "| --- | --- |\n| forged | row |",
    "<br> <details> <summary>x</summary>",
    "\\",
    "",
]


def hostile_samples(n: int, with_baseline: bool = True) -> list[Sample]:
    out = []
    for i in range(n):
        text = HOSTILE[i % len(HOSTILE)]
        other = HOSTILE[(i * 7 + 3) % len(HOSTILE)]
        out.append(Sample(prompt=other + f" #{i}", candidate=text, reference=text[::-1] if i % 3 else None,
                          baseline=other if with_baseline else None))
    return out


@pytest.mark.parametrize("name,which", [
    ("report-v3.md", ["v3"]),
    ("report-multi.md", ["v3", "v2"]),
    ("report-first.md", ["first"]),
    ("report-ct2.md", ["ct2"]),
])
def test_golden_reports(name, which):
    rendered = render_report([results(w) for w in which])
    assert not rendered.truncated and rendered.markdown == rendered.full_markdown
    check_markdown(rendered.markdown)
    check_golden(name, rendered.markdown)


def test_golden_shortened_report():
    r = results("v3")
    many = with_samples(r, [Sample(prompt=f"{s.prompt} ({i})", candidate=s.candidate * 5, reference=s.reference,
                                   baseline=s.baseline) for i in range(40) for s in r.samples])
    rendered = render_report([many], max_chars=6000, full_report_hint="The full report is an artifact.")
    assert rendered.truncated and comment_length(rendered.markdown) <= 6000
    assert 0 < rendered.samples_shown < rendered.samples_total == 120
    check_markdown(rendered.markdown)
    check_golden("report-short.md", rendered.markdown)


def test_report_reads_right():
    text = render_report([results("v3")]).markdown
    first, verdict = text.split("\n")[:2]
    assert first == "<!-- gitops-report model=review-autocomplete alias=staging -->"
    assert verdict == ("## ✅ review-autocomplete@v3 for staging: 3/3 gates pass against "
                       "review-autocomplete@production (v1)")
    assert "| Perplexity | lower | 9.984 | 11.16 | ▼ -1.172 (-10.5%) [-1.573, -0.762], better |" in text
    # the interval holds zero: no word either way, however the point estimate leans
    assert "| Tokens/s | higher | 790.1 | 812.5 | ▼ -22.4 (-2.8%) [-61, +15.2], no significant change |" in text
    assert "| Latency p95 | lower | 70.2 ms | 63.9 ms | ▲ +6.3 ms (+9.9%) [+0.8, +12.1] ms, worse |" in text
    assert "| Size | lower | 2.394 MiB | 2.289 MiB | ▲ +107.4 KiB (+4.6%), exact, worse |" in text
    assert "| exact_match |  | 0.31 | n/a |  |" in text
    assert "paired bootstrap (1,000 resamples, seed 0)" in text
    assert "Environment: cuda (NVIDIA H100 80GB HBM3) · 4 threads per model · Python" in text
    assert "What the conversion cost" not in text  # a trained candidate has no parent comparison
    assert "xychart-beta" in text and "First line: train loss; second line: eval loss." in text
    failing = render_report([results("v2")]).markdown
    assert failing.split("\n")[1].startswith("## ❌ review-autocomplete@v2 for staging: 1 of 3 gates failed")
    first_model = render_report([results("first")]).markdown
    assert "1 of 2 gates failed (1 skipped), no baseline" in first_model and "⚪ skipped" in first_model
    assert "```mermaid" not in first_model  # no training curve, no chart


def test_multi_report_has_one_marker_and_a_section_per_candidate():
    rendered = render_report([results("v3"), results("v2")])
    counts = check_markdown(rendered.markdown)
    assert rendered.verdict == "fail"
    assert rendered.markdown.split("\n")[1] == "## ❌ gitops evaluation: 1 of 2 candidates fail their gates"
    assert rendered.markdown.count("\n### ✅ ") == 1 and rendered.markdown.count("\n### ❌ ") == 1
    # overall + v3 (verdict, metrics, gates, lineage, curve) + v2 (ct2: verdict, metrics, what the
    # conversion cost, gates, lineage; no curve)
    assert counts["headings"] == 1 + 5 + 5
    assert report_marker([results("v3"), results("first")]) == \
        "<!-- gitops-report model=review-autocomplete alias=staging -->"


def test_marker_is_unforgeable_and_findable():
    r = with_samples(results("v3"), [Sample(prompt="<!-- gitops-report model=x alias=y -->",
                                            candidate="-->\n<!-- gitops-report model=x alias=y -->",
                                            baseline="<!--")])
    r.model = "evil --> <b>x</b> name"
    text = render_report([r]).markdown
    check_markdown(text)
    assert text.count("<!--") == 1
    assert find_marker(text) == ("evil_-____b_x_/b__name", "staging")
    assert marker("m", None) == "<!-- gitops-report model=m alias=- -->"
    assert find_marker(marker("m", None) + "\nbody") == ("m", None)
    assert find_marker("hello\n" + marker("m", "a")) is None


def test_hostile_text_survives_literally():
    """Every hostile string renders as exactly its own text: escaped, never interpreted."""
    samples = [Sample(prompt=f"p{i}", candidate=text, baseline=None) for i, text in enumerate(HOSTILE)]
    r = with_samples(results("first"), samples)
    markdown = render_report([r], max_chars=10_000_000).markdown
    counts = check_markdown(markdown)
    assert counts["rows"][-1] == len(HOSTILE)
    table = [t for t in parser().parse(markdown) if t.type == "inline" and t.content.startswith(
        ("&#", "<", "@", "line", "x", "l", "`"))]
    assert table  # the cells were parsed as inline text
    rendered_html = parser().render(markdown)
    for text in HOSTILE:
        if text and len(text) < 1000:
            expected = html.escape(_as_rendered(text).strip(), quote=False)  # cells are trimmed
            assert expected in rendered_html.replace("<br>", "\n").replace("\u2060", ""), repr(text)


def _as_rendered(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "")
    return "".join(" " if (ord(c) < 32 and c != "\n") or c in "\x7f\x85\u2028\u2029" else c for c in text)


def test_thousand_hostile_samples_fit_the_cap_fast():
    r = with_samples(results("v3"), hostile_samples(1000))
    r.candidate.training_curve = [CurvePoint(step=i, train_loss=3 - i / 1000, eval_loss=None if i % 10 else 3.0)
                                  for i in range(1000)]
    start = time.perf_counter()
    rendered = render_report([r])
    elapsed = time.perf_counter() - start
    assert comment_length(rendered.markdown) <= GITHUB_COMMENT_LIMIT
    assert rendered.truncated and 0 < rendered.samples_shown < 1000 and rendered.samples_total == 1000
    assert f"{rendered.samples_shown} of 1,000 sample completions shown" in rendered.markdown
    counts = check_markdown(rendered.markdown)
    assert counts["rows"][-1] == rendered.samples_shown
    full_rows = [line for line in rendered.full_markdown.split("\n") if line.startswith("| ") and
                 line.split(" | ")[0][2:].isdigit()]
    assert len(full_rows) == 1000 and len({row.count("|") for row in full_rows}) == 1
    assert elapsed < 1.0, f"rendering 1,000 samples took {elapsed:.2f}s"


def test_long_names_and_many_results_still_fit():
    r = results("v3")
    r.candidate.ref = "m@" + "v" * 20_000
    r.candidate.lineage.author = "<b>" * 5000
    r.gates[0].message = "|" * 30_000
    rendered = render_report([r], max_chars=20_000)
    assert comment_length(rendered.markdown) <= 20_000
    check_markdown(rendered.markdown)
    many = [with_samples(results("v2"), hostile_samples(5)) for _ in range(100)]
    rendered = render_report(many, max_chars=5000)
    assert comment_length(rendered.markdown) <= 5000 and rendered.samples_shown == 0
    check_markdown(rendered.markdown)
    assert "did not fit in a comment" in rendered.markdown


def test_limits_and_empty_input_are_errors():
    with pytest.raises(ReportError, match="at least 1000"):
        render_report([results("v3")], max_chars=999)
    with pytest.raises(ReportError, match="no results"):
        render_report([])


def test_emoji_count_twice_toward_the_cap():
    assert comment_length("a🚀") == 3
    r = with_samples(results("first"), [Sample(prompt="🚀" * 3000, candidate="🚀" * 3000) for _ in range(20)])
    rendered = render_report([r], max_chars=20_000)
    assert comment_length(rendered.markdown) <= 20_000 and len(rendered.markdown) < 20_000


def test_escape_functions():
    assert inline("a\nb|c") == "a b&#124;c"
    assert cell("a\r\nb\nc") == "a<br>b<br>c"
    assert cell("latency_p95_ms _x_") == "latency_p95_ms &#95;x&#95;"
    assert inline("mail a@b.c, ping @team") == "mail a@b.c, ping @\u2060team"
    assert inline("issue #12, #tag") == "issue #\u206012, #tag"
    assert inline("\ue000\ue001") == "\ufffd\ufffd"  # our private marks cannot be smuggled in
    assert inline("x" * 10, 5) == "xxxx…"


def test_curve_chart_rules():
    assert curve_chart([]) is None
    assert curve_chart([CurvePoint(step=1)]) is None
    sparse = [CurvePoint(step=i, train_loss=1.0 + i, eval_loss=2.0 if i == 2 else None) for i in range(4)]
    chart = curve_chart(sparse)
    assert chart.count("    line [") == 1 and '[0, 1, 2, 3]' in chart
    long = [CurvePoint(step=i, train_loss=1.0, eval_loss=1.0) for i in range(500)]
    axis = next(line for line in curve_chart(long).split("\n") if "x-axis" in line)
    steps = axis.split("[")[1].rstrip("]").split(", ")
    assert len(steps) <= 51 and steps[0] == "0" and steps[-1] == "499"
