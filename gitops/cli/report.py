"""``gitops report``: results documents in, the Markdown a reviewer reads on a pull request out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitops.cli.common import github_repo_option, repo_option
from gitops.errors import GateFailed

if TYPE_CHECKING:
    from gitops.report.render import RenderedReport


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the comment-sized report here instead of printing it.")
@click.option("--full-out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the complete report (every sample, nothing shortened) here.")
@click.option("--max-chars", type=int, default=65536, show_default=True,
              help="Longest report to produce; GitHub rejects comments over 65,536 characters.")
@click.option("--full-report-hint", metavar="TEXT",
              help="A sentence added when the report was shortened, e.g. where the full report is.")
@click.option("--check", is_flag=True,
              help="Exit with status 3 after writing the report when any gate failed.")
@click.option("--post", is_flag=True,
              help="Post the report as the sticky comment of pull request --pr (GITHUB_TOKEN, GITHUB_API_URL).")
@click.option("--pr", "pr_number", type=int, help="Pull request number to comment on (with --post).")
@github_repo_option
@repo_option
def report_command(results: tuple[Path, ...], out: Path | None, full_out: Path | None, max_chars: int,
                   full_report_hint: str | None, check: bool, post: bool, pr_number: int | None,
                   github_repo: str | None, repo_dir: Path) -> None:
    """Render evaluation results as a Markdown report (one section per results file).

    \b
    Examples:
      gitops report results.json
      gitops report v3.json v2.json --out report.md --full-out report-full.md
      gitops report results.json --check   # exit 3 when a gate failed
      gitops report results.json --post --pr 12   # one sticky comment per model and alias
      gitops report results/*/results.json --post --pr 12   # all of a PR: one comment, one table of variants
    """
    from gitops import api
    from gitops.yamlio import write_atomic

    if post and pr_number is None:
        raise click.UsageError("--post needs --pr N")
    if github_repo is not None and not post:
        raise click.UsageError("--github-repo needs --post (only posting talks to GitHub)")

    # The repository's name and the token are checked before anything is rendered or written.
    github = api.github_client(github_repo, repo_dir) if post else None
    rendered = api.report(list(results), max_chars=max_chars, full_report_hint=full_report_hint)
    if out is not None:
        write_atomic(out, rendered.markdown)
    else:
        click.echo(rendered.markdown, nl=False)
    if full_out is not None:
        write_atomic(full_out, rendered.full_markdown)
    click.echo(summary_line(rendered, out), err=True)
    if post:
        assert pr_number is not None  # --post without --pr was refused above
        url, created = api.post_report(rendered.markdown, pr_number, github)
        click.echo(f"{'Posted' if created else 'Updated'} the report on PR #{pr_number}: {url}", err=True)
    if check and rendered.verdict != "pass":
        raise GateFailed("an evaluation gate failed; see the report")


def summary_line(rendered: RenderedReport, out: Path | None) -> str:
    """One line for the terminal: verdict, size, samples shown, where it went."""
    icon = {"❌": "❌ a gate failed", "✅": "✅ gates pass", "⚪": "⚪ no gates defined, not judged"}.get(
        rendered.icon, "⚠️ gates pass, but a candidate is worse than its baseline or not judged")
    shortened = " (shortened)" if rendered.truncated else ""
    where = f" -> {out}" if out is not None else ""
    return (f"{icon}; report {rendered.chars:,} characters{shortened}, "
            f"{rendered.samples_shown} of {rendered.samples_total} samples shown{where}")


def register(group: click.Group) -> None:
    group.add_command(report_command)
