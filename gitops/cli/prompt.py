"""``gitops prompt``: prompt versions (a base model version, a template, retrieval; no weights)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import repo_option, workspace_of
from gitops.cli.progress import StageBar


@click.group()
def prompt() -> None:
    """Prompt versions: zero-shot and few-shot variants of a model, stored as YAML in git."""


@prompt.command("add")
@click.argument("model_name", metavar="MODEL")
@click.option("--config", "config", required=True, type=click.Path(path_type=Path),
              help="The prompt config (base, template, retrieval, generation), e.g. --config few-shot.yaml.")
@click.option("--note", help="A note stored with the version, e.g. --note 'bm25 k=3'.")
@repo_option
def prompt_add(model_name: str, config: Path, note: str | None, repo_dir: Path) -> None:
    """Add a prompt config as MODEL's next version: its base pinned to a version and md5, committed.

    The same config added twice is one version (nothing is committed the second time).

    \b
    Example:
      gitops prompt add ratings --config few-shot-bm25.yaml --note "bm25 k=3"
    """
    from gitops import api

    result = api.add_prompt(workspace_of(repo_dir), model_name, config, note=note)
    v = result.version
    if result.created:
        click.echo(f"Added {model_name}@{v.id} (prompt on {v.base_model}, config {v.config_hash})")
    else:
        click.echo(f"{model_name}@{v.id} already holds this prompt config ({v.config_hash}); nothing committed")




_SPLITS = click.Choice(["test", "valid", "train", "all"])


def _constrain_option(fn):  # untyped: a click decorator
    return click.option(
        "--constrain", type=click.Choice(["labels", "none"]), default=None,
        help="Decoding: 'labels' scores each label as the prompt's continuation and predicts the likeliest "
             "(never an invalid output); 'none' generates freely; default: what the variant's config says "
             "(generation.constrain). E.g. --constrain labels.")(fn)


@click.command("predict")
@click.argument("ref", metavar="MODEL@REF")
@click.option("--dataset", help="The data set version to predict, e.g. --dataset reviews@v1 (or --input FILE).")
@click.option("--input", "input_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A CSV, TSV, JSON Lines or Parquet file of new rows to predict (the label column may be "
                   "missing or empty; nothing is ingested), e.g. --input new-reviews.csv.")
@click.option("--split", default="test", show_default=True, type=_SPLITS,
              help="Which rows of --dataset, e.g. --split valid.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Where to write the predictions (.parquet, .csv or .jsonl), e.g. --out preds.parquet.")
@click.option("--batch-size", default=32, show_default=True,
              help="Rows predicted at once (rows of similar length are batched together), e.g. --batch-size 64.")
@click.option("--limit", type=click.IntRange(min=1), help="Predict only the first N rows, e.g. --limit 100.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="Where the model runs, e.g. --device cuda.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads, e.g. --threads 2.")
@_constrain_option
@click.option("--probabilities/--no-probabilities", default=True, show_default=True,
              help="With free decoding, also score every label for its probability (one more pass over the "
                   "prompts); constrained decoding always has them. E.g. --no-probabilities for speed.")
@repo_option
def predict_command(ref: str, dataset: str | None, input_file: Path | None, split: str, out: Path, batch_size: int,
                    limit: int | None, device: str, threads: int | None, constrain: str | None, probabilities: bool,
                    repo_dir: Path) -> None:
    """Predict a label for every row of a data set version (or of a file) with one variant of a
    classification model.

    Writes key, input, label, prediction, matched, raw_output, tokens, latency and the probability
    of every label per row. A killed run resumes from OUT.partial.jsonl when started again with the
    same arguments.

    \b
    Examples:
      gitops predict ratings@v2 --dataset reviews@v1 --split test --out preds.parquet
      gitops predict ratings@production --input new-reviews.csv --out new.csv
    """
    from gitops import api

    with StageBar(unit="row") as bar:
        result = api.predict(workspace_of(repo_dir), ref, dataset, split=split, out=out, batch_size=batch_size,
                             limit=limit, device=device, threads=threads, progress=bar.of("predict"),
                             constrain=constrain, input_file=input_file, probabilities=probabilities)
    resumed = f" ({result.resumed} resumed from a killed run)" if result.resumed else ""
    how = ", decoding constrained to the labels" if result.constrained else ""
    click.echo(f"{result.rows} predictions{resumed} written to {out}: {result.rows_per_second:.1f} rows/s "
               f"(after {result.load_seconds:.1f} s opening the model){how}")
    s = result.scores
    if s.rows:
        click.echo(f"accuracy {s.accuracy:.1%}, macro-F1 {s.macro_f1:.1%}, macro {s.macro_accuracy:.1%}, "
                   f"invalid outputs {s.invalid_rate:.1%}, {s.tokens_per_prediction:.1f} tokens per prediction"
                   + (f", log loss {s.log_loss:.3f}, ECE {s.ece:.1%}" if s.log_loss is not None else "")
                   + (f" ({s.rows} of {result.rows} rows labelled)" if s.rows < result.rows else ""))
    else:
        click.echo("no row has a label: nothing to score")


@click.command("compare")
@click.argument("refs", nargs=-1, required=True, metavar="MODEL@A MODEL@B ...")
@click.option("--dataset", help="The data set version (default: the one the variants name), e.g. --dataset reviews@v1.")
@click.option("--split", default="test", show_default=True, type=_SPLITS, help="Which rows, e.g. --split valid.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows, e.g. --limit 200.")
@click.option("--batch-size", default=32, show_default=True, help="Rows predicted at once, e.g. --batch-size 64.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown, e.g. --json > table.json.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="Where the model runs, e.g. --device cuda.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads, e.g. --threads 2.")
@_constrain_option
@repo_option
def compare_command(refs: tuple[str, ...], dataset: str | None, split: str, limit: int | None, batch_size: int,
                    as_json: bool, device: str, threads: int | None, constrain: str | None, repo_dir: Path) -> None:
    """Compare variants of one classification model on the same rows: accuracy, macro-F1, log loss
    and calibration error (with intervals), the majority-class baseline, the invalid-output rate
    (a variant over 20% is flagged, with three of its outputs), p50 latency and tokens per prediction.

    \b
    Example:
      gitops compare ratings@v1 ratings@v2 ratings@v3 --dataset reviews@v1 --json
    """
    from gitops import api

    with StageBar(unit="row") as bar:
        table = api.compare_variants(workspace_of(repo_dir), list(refs), dataset=dataset, split=split,
                                     batch_size=batch_size, limit=limit, device=device, threads=threads,
                                     progress=bar.of("compare"), constrain=constrain)
    if as_json:
        from gitops.cli.output import echo_json

        echo_json(table.to_dict())
    else:
        click.echo(table.markdown(), nl=False)


def register(group: click.Group) -> None:
    for command in (prompt, predict_command, compare_command):
        group.add_command(command)
