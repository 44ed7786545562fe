"""Options and helpers shared by command modules."""

from __future__ import annotations

from pathlib import Path

import click

# The two ways a command names a repository, spelled the same on every command (tests/test_cli_names.py
# walks the click tree and fails on any other spelling): the local GitOps repository is a directory,
# the GitHub repository is OWNER/NAME.
repo_option = click.option(
    "-C", "--repo-dir", "repo_dir", default=".", show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run as if gitops was started in this directory (any directory inside the GitOps repo), "
         "e.g. -C ../my-models.",
)

github_repo_option = click.option(
    "--github-repo", "github_repo", metavar="OWNER/NAME",
    help="The GitHub repository, e.g. --github-repo acme/my-models (default: github.repo in gitops.yaml, "
         "then $GITHUB_REPOSITORY).",
)


def workspace_of(repo_dir: Path):  # untyped: a gitops.api.Workspace (imported lazily)
    """The command's one Workspace: the GitOps repository containing ``repo_dir``."""
    from gitops import api

    ws = api.Workspace.open(repo_dir)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # at the end, failed or not: what settling a killed command's leftovers did
        ctx.call_on_close(lambda: _say_recovered(ws))
    return ws


def _say_recovered(ws) -> None:  # untyped: a gitops.api.Workspace
    for sentence in ws.recovered:
        click.echo(f"{sentence[0].upper()}{sentence[1:]}.", err=True)


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, list[str]]:
    """``alias=@org/team`` pairs (repeatable, owners comma-separated) into a mapping."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, owners = value.partition("=")
        if not sep or not key or not owners:
            raise click.BadParameter(f"'{value}' must look like ALIAS=@org/team", param_hint=what)
        out.setdefault(key, []).extend(o.strip() for o in owners.split(",") if o.strip())
    return out
