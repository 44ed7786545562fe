"""GitHub-facing commands: ``approvals`` (a required check) and ``promote`` (an alias move as a PR)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import github_repo_option, repo_option, workspace_of
from gitops.errors import ApprovalMissing


@click.command("promote")
@click.argument("ref", metavar="MODEL@REF")
@click.option("--to", "alias", required=True, help="The alias to move, e.g. staging or production.")
@click.option("--pr", "open_pr", is_flag=True,
              help="Push the branch to origin and open a pull request; the GitHub repository and the token "
                   "are checked first, and a failed push or pull request deletes the branch again.")
@click.option("--note", help="Why: recorded in the alias file, the commit and the pull request.")
@click.option("--base", default="main", show_default=True, help="Branch the pull request merges into.")
@github_repo_option
@repo_option
def promote_cmd(ref: str, alias: str, open_pr: bool, note: str | None, base: str, github_repo: str | None,
                repo_dir: Path) -> None:
    """Move ALIAS to the version MODEL@REF names, on a new branch, as one commit.

    \b
    Examples:
      gitops promote review-autocomplete@v3 --to staging
      gitops promote review-autocomplete@staging --to production --pr --note "beats v2 on loss"
      gitops promote review-autocomplete@v3 --to staging --pr --github-repo acme/my-models -C ../my-models
    """
    from gitops import api

    if github_repo is not None and not open_pr:
        raise click.UsageError("--github-repo needs --pr (only the pull request talks to GitHub)")
    ws = workspace_of(repo_dir)
    result = api.promote(ws, ref, alias, note=note, open_pr=open_pr, base=base, github_repo=github_repo)
    click.echo(f"{result.model}@{result.alias}: {result.previous or 'unset'} -> {result.version} "
               f"on branch {result.branch} (commit {result.commit[:12]})")
    if result.pr_number is not None:
        click.echo(f"Opened pull request #{result.pr_number}: {result.pr_url}")
    else:
        click.echo(f"Push it and open a pull request: git push origin {result.branch} (or rerun with --pr)")


@click.command("approvals")
@click.option("--pr", "pr_number", type=int, required=True, help="Pull request number.")
@github_repo_option
@repo_option
def approvals_cmd(pr_number: int, github_repo: str | None, repo_dir: Path) -> None:
    """Fail unless every protected alias the PR moves has a code owner's approval.

    Meant as a required status check: reviews must approve the PR's head commit, by a code owner
    (CODEOWNERS on the base branch, teams expanded) other than the author, with write access.

    \b
    Examples:
      gitops approvals --pr 42
      gitops approvals --pr "$PR_NUMBER" --github-repo "$GITHUB_REPOSITORY"   # in a workflow
    """
    from gitops import api

    result = api.approvals(pr_number, github_repo, repo_dir)
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        raise ApprovalMissing(result.summary())


def register(group: click.Group) -> None:
    group.add_command(promote_cmd)
    group.add_command(approvals_cmd)
