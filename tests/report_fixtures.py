"""Shared helpers for the report tests: load the fixed results documents and check rendered Markdown
the way GitHub would read it (markdown-it-py with tables), so a break in the Markdown fails a test."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

from markdown_it import MarkdownIt

from gitops.eval.results import EvalResults

GOLDEN = Path(__file__).parent / "golden"
ALLOWED_HTML = re.compile(
    r"<!-- gitops-report model=\S+ alias=\S+ -->|<details>|</details>|<summary>[^<>]*</summary>|<br>")
ALLOWED_BLOCKS = {"paragraph_open", "paragraph_close", "heading_open", "heading_close", "inline",
                  "table_open", "table_close", "thead_open", "thead_close", "tbody_open", "tbody_close",
                  "tr_open", "tr_close", "th_open", "th_close", "td_open", "td_close", "html_block", "fence"}


def results(name: str) -> EvalResults:
    return EvalResults.load(GOLDEN / f"results-{name}.json")


def with_samples(r: EvalResults, samples: list) -> EvalResults:
    out = copy.deepcopy(r)
    out.samples = samples
    return out


def check_golden(name: str, markdown: str) -> None:
    """Compare with tests/golden/NAME; GITOPS_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("GITOPS_UPDATE_GOLDEN") == "1":
        path.write_text(markdown, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with GITOPS_UPDATE_GOLDEN=1 to create it"
    assert markdown == path.read_text(encoding="utf-8"), f"{name} differs; GITOPS_UPDATE_GOLDEN=1 updates it"


def parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def check_markdown(markdown: str) -> dict:
    """Assert the report is well-formed Markdown that only we shaped; return a few counts."""
    assert markdown.startswith("<!-- gitops-report ") and markdown.count("<!-- gitops-report") == 1
    md = parser()
    tokens = md.parse(markdown)
    lines = markdown.split("\n")
    counts = {"headings": 0, "tables": 0, "rows": [], "details": 0}
    for token in tokens:
        assert token.type in ALLOWED_BLOCKS, f"unexpected block {token.type} at line {token.map}"
        if token.type == "fence":
            assert token.info == "mermaid"
        if token.type == "heading_open":
            counts["headings"] += 1
        if token.type == "html_block":
            _check_html(token.content)
            counts["details"] += token.content.count("<details>") - token.content.count("</details>")
        if token.type == "table_open":
            counts["tables"] += 1
            start, end = token.map
            pipes = {line.count("|") for line in lines[start:end]}
            assert len(pipes) == 1, f"table at line {start} has rows with different column counts"
            counts["rows"].append(end - start - 2)
        for child in token.children or []:
            if child.type == "html_inline":
                _check_html(child.content)
            assert child.type in {"text", "html_inline", "strong_open", "strong_close", "softbreak"}, \
                f"data became markup: {child.type} {child.content!r}"
    assert counts["details"] == 0, "<details> is not balanced"
    in_tables = {n for t in tokens if t.type == "table_open" for n in range(*t.map)}
    in_fences = {n for t in tokens if t.type == "fence" for n in range(*t.map)}
    stray = [n for n, line in enumerate(lines) if line.startswith("|") and n not in in_tables | in_fences]
    assert not stray, f"table rows outside a table at lines {stray[:5]}: {lines[stray[0]][:80]!r}"
    html = md.render(markdown)
    assert html.count("<details>") == html.count("</details>")
    for tag in ("<script", "<img", "<a ", "<em>", "<code>", "<del>", "<s>", "<iframe"):
        assert tag not in html, f"{tag} in the rendered HTML"
    return counts


def _check_html(content: str) -> None:
    leftover = ALLOWED_HTML.sub("", content)
    assert leftover.strip() == "", f"raw HTML that is not ours: {leftover[:80]!r}"
