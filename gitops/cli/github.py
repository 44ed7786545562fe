"""GitHub-facing commands: ``approvals`` (a required check) and ``promote`` (an alias move as a PR)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.errors import ApprovalMissing


@click.command("promote")
@click.argument("ref", metavar="MODEL@REF")
@click.option("--to", "alias", required=True, help="The alias to move, e.g. staging or production.")
@click.option("--pr", "open_pr", is_flag=True, help="Push the branch to origin and open a pull request.")
@click.option("--note", help="Why: recorded in the alias file, the commit and the pull request.")
@click.option("--base", default="main", show_default=True, help="Branch the pull request merges into.")
@click.option("--repo", help="GitHub repository owner/name (default: $GITHUB_REPOSITORY).")
@click.option("-C", "root", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="Run in this repository instead of the current directory.")
def promote_cmd(ref: str, alias: str, open_pr: bool, note: str | None, base: str, repo: str | None,
                root: Path) -> None:
    """Move ALIAS to the version MODEL@REF names, on a new branch, as one commit.

    \b
    Examples:
      gitops promote review-autocomplete@v3 --to staging
      gitops promote review-autocomplete@staging --to production --pr --note "beats v2 on loss"
    """
    from gitops import api

    ws = api.Workspace.open(root)
    result = api.promote(ws, ref, alias, note=note)
    click.echo(f"{result.model}@{result.alias}: {result.previous or 'unset'} -> {result.version} "
               f"on branch {result.branch} (commit {result.commit[:12]})")
    if open_pr:
        # gitops.yaml's github.repo before $GITHUB_REPOSITORY (a minimal stand-in for the option
        # convention being unified on another branch)
        repo = repo or ws.settings.repo or None
        result = api.open_pull_request(ws, result, note, base=base, repo=repo)
        click.echo(f"Opened pull request #{result.pr_number}: {result.pr_url}")
    else:
        click.echo(f"Push it and open a pull request: git push origin {result.branch} (or rerun with --pr)")


@click.command("approvals")
@click.option("--pr", "pr_number", type=int, required=True, help="Pull request number.")
@click.option("--repo", help="GitHub repository owner/name (default: $GITHUB_REPOSITORY).")
def approvals_cmd(pr_number: int, repo: str | None) -> None:
    """Fail unless every protected alias the PR moves has a code owner's approval.

    Meant as a required status check: reviews must approve the PR's head commit, by a code owner
    (CODEOWNERS on the base branch, teams expanded) other than the author, with write access.

    \b
    Examples:
      gitops approvals --pr 42
      GITHUB_REPOSITORY=acme/models gitops approvals --pr "$PR_NUMBER"
    """
    from gitops import api

    result = api.approvals(pr_number, repo)
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        raise ApprovalMissing(result.summary())


def register(group: click.Group) -> None:
    group.add_command(promote_cmd)
    group.add_command(approvals_cmd)
