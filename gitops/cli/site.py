"""``gitops site``: the registry as static HTML pages (index, models, versions, data sets, evaluations)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import repo_option, workspace_of


@click.command("site")
@click.option("--out", "out", type=click.Path(path_type=Path),
              help="Directory for the pages, made if missing (default: _site in the repository), "
                   "e.g. --out public.")
@click.option("--rev", metavar="REV",
              help="Render the registry as committed at this git revision, e.g. --rev main (default: HEAD, "
                   "plus the results documents in the work tree).")
@repo_option
def site_command(out: Path | None, rev: str | None, repo_dir: Path) -> None:
    """Render the registry as static HTML pages: an index of models and data sets, a page per
    model (versions, alias timeline from git history, lineage graph, metric trends, variants
    side by side), per version, per data set version and per evaluation results document.

    No script and no network: the pages open from disk and hold under a strict
    Content-Security-Policy. Re-running rewrites only the pages whose content changed.

    \b
    Examples:
      gitops site                          # _site/index.html, the registry at HEAD
      gitops site --out public --rev main  # elsewhere, the registry as committed on main
      gitops site -C demo-repo --out demo-repo/site
    """
    from gitops import api

    result = api.site(workspace_of(repo_dir), out, rev)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}.", err=True)
    click.echo(f"{result.pages:,} page{'' if result.pages == 1 else 's'} of {result.commit[:10]} in {result.out}: "
               f"{len(result.written):,} written, "
               f"{result.unchanged:,} unchanged, {len(result.removed):,} removed ({result.seconds:.1f} s; "
               f"largest {result.largest[1] / 1024:,.0f} KiB). Open {result.out / 'index.html'}")


def register(group: click.Group) -> None:
    group.add_command(site_command)
