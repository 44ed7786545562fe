"""``gitops dataset create|show`` and ``gitops ingest``: parse, call the verb through :mod:`gitops.api`, print."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import github_repo_option, repo_option, workspace_of
from gitops.cli.output import echo_json, table
from gitops.core.schema import NORMALIZE_STEPS


def _pairs(values: tuple[str, ...], sep: str, what: str, option: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        left, found, right = value.partition(sep)
        if not found or not left or not right:
            raise click.BadParameter(f"'{value}' is not {what}", param_hint=option)
        out.append((left.strip(), right.strip()))
    names = [name for name, _ in out]
    if dup := next((n for i, n in enumerate(names) if n in names[:i]), None):
        raise click.BadParameter(f"'{dup}' is given twice", param_hint=option)  # a dict would keep one silently
    return out


@click.group("dataset")
def dataset_group() -> None:
    """Create and inspect data sets (schema, split rule, versions).

    \b
    Examples:
      gitops dataset create reviews --column id:string --column text:string --text-field text --key id
      gitops dataset show reviews
    """


@dataset_group.command("create")
@click.argument("name")
@click.option("--column", "columns", multiple=True, required=True, metavar="NAME:TYPE",
              help="A column and its type (string, int, float, bool); repeat for each column.")
@click.option("--text-field", required=True, help="The string column that holds the text to train on.")
@click.option("--key", "key", multiple=True, required=True,
              help="A column that identifies a row (repeat for a composite key); used to dedupe and split.")
@click.option("--split", "splits", multiple=True, metavar="NAME=FRACTION",
              help="A split and its fraction; repeat (default train=0.8 valid=0.1 test=0.1).")
@click.option("--split-column", metavar="NAME",
              help="An input column naming each row's split (e.g. 'split' holding train/valid/test): rows keep "
                   "the split it names; rows without a value are split by key hash. Not one of --column.")
@click.option("--normalize", "normalize", multiple=True, type=click.Choice(NORMALIZE_STEPS),
              help="A text normalisation step applied at ingest to every string value, before dedupe and split; "
                   "repeat, applied in order (e.g. --normalize html_unescape --normalize strip).")
@click.option("--description", default="", help="One line saying what the data set holds.")
@repo_option
def create_cmd(repo_dir: Path, name: str, columns: tuple[str, ...], text_field: str, key: tuple[str, ...],
               splits: tuple[str, ...], split_column: str | None, normalize: tuple[str, ...],
               description: str) -> None:
    """Create data set NAME: write registry/datasets/NAME.yaml and commit it.

    \b
    Examples:
      gitops dataset create reviews --column id:string --column text:string \\
          --column rating:int --text-field text --key id \\
          --split train=0.8 --split valid=0.1 --split test=0.1
      gitops dataset create reviews --column id:string --column text:string --text-field text \\
          --key id --split-column split --normalize html_unescape --normalize strip
    """
    from gitops import api

    cols = dict(_pairs(columns, ":", "NAME:TYPE (e.g. text:string)", "--column"))
    split_map = None
    if splits:
        try:
            split_map = {k: float(v) for k, v in _pairs(splits, "=", "NAME=FRACTION (e.g. train=0.8)", "--split")}
        except ValueError:
            raise click.BadParameter("split fractions must be numbers, e.g. train=0.8") from None
    ds = api.create_dataset(workspace_of(repo_dir), name, cols, text_field, list(key), split_map, description,
                            split_column=split_column, normalize=list(normalize))
    click.echo(f"Created data set '{ds.name}' (registry/datasets/{ds.name}.yaml); "
               f"ingest with: gitops ingest FILE --dataset {ds.name}")


@dataset_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the data set as JSON.")
@click.option("--rev", default=None, help="Read the data set as recorded at this git ref.")
@repo_option
def show_cmd(name: str, as_json: bool, rev: str | None, repo_dir: Path) -> None:
    """Show data set NAME: schema, and per version the rows per split and the batch file.

    \b
    Example:
      gitops dataset show reviews
      gitops dataset show reviews --json
    """
    from gitops import api

    ds = api.show_dataset(workspace_of(repo_dir), name, rev)
    versions = {vid: v.to_dict() for vid, v in ds.versions.items()}
    if as_json:
        echo_json({**ds.header_dict(), "versions": versions})
        return
    cols = ", ".join(f"{c}:{t}" for c, t in ds.columns.items())
    click.echo(f"{ds.name}: {ds.description}" if ds.description else ds.name)
    click.echo(f"  columns: {cols}; text: {ds.text_field}; key: {', '.join(ds.key)}")
    click.echo("  splits: " + ", ".join(f"{k} {v:g}" for k, v in ds.splits.items())
               + (f"; a row's split column '{ds.split_column}' decides first" if ds.split_column else ""))
    if ds.normalize:
        click.echo("  normalize: " + ", ".join(ds.normalize))
    if not ds.versions:
        click.echo("  no versions yet")
        return
    rows = [[vid, str(v.rows), *[str(v.splits.get(s, 0)) for s in ds.splits], str(v.total_rows or ""),
             v.batch, v.created_at] for vid, v in ds.versions.items()]
    click.echo(table(rows, ["version", "rows", *ds.splits, "total", "batch", "created"]))


@click.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="The data set to add the rows to.")
@click.option("--skip-invalid", is_flag=True,
              help="Keep the valid rows; write the invalid ones to FILE.rejects.jsonl beside each input.")
@click.option("--delimiter", metavar="CHAR",
              help="Read every input that is not .jsonl/.parquet as text delimited by CHAR ('tab' for a tab). "
                   "Default: by extension (.csv comma, .tsv tab, .psv pipe).")
@click.option("--push", is_flag=True, help="Then run 'dvc push' and 'git push'.")
@click.option("--pr", "open_pr", is_flag=True,
              help="For a protected main: commit the new version on a new branch, push it with the data and "
                   "open a pull request, e.g. gitops ingest new.csv --dataset reviews --pr.")
@github_repo_option
@click.option("--base", "base_branch", metavar="BRANCH",
              help="The branch the --pr pull request merges into (default: the branch checked out).")
@repo_option
def ingest_cmd(files: tuple[Path, ...], dataset: str, skip_invalid: bool, delimiter: str | None, push: bool,
               open_pr: bool, github_repo: str | None, base_branch: str | None, repo_dir: Path) -> None:
    """Validate, dedupe and split FILES (CSV, TSV, any delimited text, JSON Lines, Parquet) into a new
    version of a data set.

    Refuses the whole batch when a row is invalid unless --skip-invalid. Rows whose key the data set
    already holds are dropped; ingesting the same file twice adds nothing. A key's split never
    changes: a row whose key is already in the data set is dropped even when it names another split.
    A header whose first cell is empty (the index pandas writes) has that column ignored.

    \b
    Examples:
      gitops ingest new.csv --dataset reviews
      gitops ingest export.tsv --dataset reviews
      gitops ingest export.txt --delimiter ';' --dataset reviews
      gitops ingest a.jsonl b.parquet --dataset reviews --skip-invalid --push
      gitops ingest new.csv --dataset reviews --pr     # main is protected: a pull request
    """
    from gitops import api
    from gitops.errors import ConfigError

    def progress(message: str) -> None:
        click.echo(f"... {message}", err=True)

    ws = workspace_of(repo_dir)
    proposed = None
    if open_pr:
        if push:
            raise ConfigError("--push and --pr exclude each other: --pr pushes a branch and opens a pull request")
        result, proposed = api.propose_ingest(ws, list(files), dataset, repo=github_repo, base=base_branch,
                                              skip_invalid=skip_invalid, delimiter=delimiter, progress=progress)
    else:
        result = api.ingest(ws, list(files), dataset, skip_invalid=skip_invalid, push=push, delimiter=delimiter,
                            progress=progress)
    if result.invalid:
        where = ", ".join(str(p) for p in result.rejects_paths)
        click.echo(f"Skipped {result.invalid} invalid rows (written to {where}).", err=True)
    if result.duplicates and result.version:
        click.echo(f"Dropped {result.duplicates} duplicate rows.", err=True)
    if result.split_conflicts:
        click.echo(f"{result.split_conflicts} of the dropped rows named another split than the one their key "
                   "already has; a key's split never changes, so each kept its recorded split.", err=True)
    click.echo(result.message[0].upper() + result.message[1:] if result.message else "Done.")
    if result.pushed:
        click.echo("Pushed data to the DVC remote and the commit to origin.")
    if proposed is not None:
        click.echo(f"Opened pull request #{proposed.pr_number} ({proposed.branch} into {proposed.base}): "
                   f"{proposed.pr_url}")


def register(group: click.Group) -> None:
    group.add_command(dataset_group)
    group.add_command(ingest_cmd)

