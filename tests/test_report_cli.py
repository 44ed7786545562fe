"""`gitops report` end to end through the real click command group."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from gitops.cli import main
from tests.report_fixtures import GOLDEN, check_markdown


def invoke(*args: str):
    return CliRunner().invoke(main, ["report", *args], catch_exceptions=False)


def test_prints_the_report_and_a_summary_line():
    result = invoke(str(GOLDEN / "results-v3.json"))
    assert result.exit_code == 0
    assert result.stdout == (GOLDEN / "report-v3.md").read_text(encoding="utf-8")
    assert result.stderr.strip().startswith("✅ gates pass; report ")
    assert "3 of 3 samples shown" in result.stderr


def test_writes_comment_and_full_report(tmp_path):
    results = tmp_path / "v3.json"
    shutil.copy(GOLDEN / "results-v3.json", results)
    out, full = tmp_path / "report.md", tmp_path / "full" / "report-full.md"
    result = invoke(str(results), str(GOLDEN / "results-v2.json"), "--out", str(out), "--full-out", str(full),
                    "--max-chars", "4000", "--full-report-hint", "See the artifact.")
    assert result.exit_code == 0 and result.stdout == ""
    comment = out.read_text(encoding="utf-8")
    assert len(comment) <= 4000 and "See the artifact." in comment
    check_markdown(comment)
    assert full.read_text(encoding="utf-8") == (GOLDEN / "report-multi.md").read_text(encoding="utf-8")
    assert "❌ a gate failed" in result.stderr and "(shortened)" in result.stderr and f"-> {out}" in result.stderr


def test_check_exits_3_when_a_gate_failed(tmp_path):
    result = invoke(str(GOLDEN / "results-v2.json"), "--check", "--out", str(tmp_path / "r.md"))
    assert result.exit_code == 3
    assert (tmp_path / "r.md").exists()  # the report is written before the exit
    assert "an evaluation gate failed" in result.stderr
    assert invoke(str(GOLDEN / "results-v3.json"), "--check").exit_code == 0


def test_bad_input_is_one_clear_sentence(tmp_path):
    missing = invoke(str(tmp_path / "nope.json"))
    assert missing.exit_code == 1 and missing.stderr == f"Error: results file {tmp_path / 'nope.json'} does not exist\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 7}', encoding="utf-8")
    result = invoke(str(bad))
    assert result.exit_code == 1 and "has schema_version 7, but this gitops reads only version 2" in result.stderr
    small = invoke(str(GOLDEN / "results-v3.json"), "--max-chars", "10")
    assert small.exit_code == 1 and "too small; use at least 1000" in small.stderr
    assert invoke().exit_code == 2  # RESULTS is required: a usage error


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "gitops report results.json" in result.output
    for option in ("--out", "--full-out", "--max-chars", "--full-report-hint", "--check"):
        assert option in result.output
