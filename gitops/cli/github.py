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
@click.option("--pr", "pr_number", type=int,
              help="Pull request number: judge its reviews on GitHub (the required check), e.g. --pr 42.")
@click.option("--base", "base", metavar="GIT_REF",
              help="Offline, no GitHub: list what a pull request from the work tree to GIT_REF would need approved, "
                   "e.g. --base origin/main.")
@click.option("--json", "as_json", is_flag=True, help="With --base: print the changes as JSON.")
@github_repo_option
@repo_option
def approvals_cmd(pr_number: int | None, base: str | None, as_json: bool, github_repo: str | None,
                  repo_dir: Path) -> None:
    """Fail unless every change to what a protected alias computes has its owners' approval.

    With --pr, a required status check: a protected alias moved, anything in its closure changed
    (its version and weights, the base it runs on, its prompt config, the model's task block, the
    data sets it trains on, retrieves from or is evaluated on) needs an approval of the PR's head
    commit by its owners; the machinery (workflows, CODEOWNERS, gitops.yaml, .dvc/, admin_paths,
    a model's protected/gates) by an admin. Owners come from the base branch, teams expanded,
    the author excluded, write access required.

    With --base, the same computation offline, before a pull request exists: every change between
    GIT_REF and the work tree that will need approval, with the aliases whose closure it touches
    and their owners (exit 0; nothing is judged).

    \b
    Examples:
      gitops approvals --pr 42
      gitops approvals --pr "$PR_NUMBER" --github-repo "$GITHUB_REPOSITORY"   # in a workflow
      gitops approvals --base origin/main
      gitops approvals --base origin/main --json
    """
    from gitops import api

    if (pr_number is None) == (base is None):
        raise click.UsageError("give exactly one of --pr N (judge a pull request) and --base GIT_REF (offline)")
    if base is not None:
        from gitops.cli.output import echo_json

        if github_repo is not None:
            raise click.UsageError("--github-repo goes with --pr (--base needs no GitHub)")
        found = api.review_changes(workspace_of(repo_dir), base)
        if as_json:
            echo_json(found.to_dict())
            return
        for change in found.changes:
            click.echo(change.line())
            for note in change.notes:
                click.echo(f"  note: {note}")
        for note in found.notes:
            click.echo(f"note: {note}")
        n = len(found.changes)
        click.echo(f"{n} change{'s' if n != 1 else ''} between {base} and the work tree need{'s' if n == 1 else ''} "
                   "approval." if n else f"Nothing between {base} and the work tree needs approval.")
        return
    if as_json:
        raise click.UsageError("--json goes with --base")
    assert pr_number is not None  # exactly one of --pr and --base (checked above)
    result = api.approvals(pr_number, github_repo, repo_dir)
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        raise ApprovalMissing(result.summary())


def register(group: click.Group) -> None:
    group.add_command(promote_cmd)
    group.add_command(approvals_cmd)
