"""``gitops eval``: measure a candidate against its baseline and write the results document."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitops.cli.common import repo_option, workspace_of
from gitops.cli.output import table
from gitops.errors import EvalError, GateFailed

if TYPE_CHECKING:
    from gitops.eval.results import EvalResults


@click.command("eval")
@click.argument("ref", metavar="MODEL@REF")
@click.option("--baseline", metavar="MODEL@REF",
              help="What to compare with. Default: MODEL@production when that alias exists, else none.")
@click.option("--baseline-rev", metavar="GIT_REF",
              help="Resolve the baseline's alias as it was at this git ref (e.g. a PR's base commit).")
@click.option("--no-baseline", is_flag=True, help="Evaluate the candidate alone.")
@click.option("--dataset", metavar="NAME@REF",
              help="Data set version to evaluate on. Default: the candidate's training data set at latest.")
@click.option("--split", default="test", show_default=True, help="Split to evaluate on (the holdout).")
@click.option("--out", "out", default="results.json", show_default=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Where to write the results document (JSON, written atomically).")
@click.option("--samples", default=8, show_default=True, type=click.IntRange(min=0),
              help="Sample completions to record (prompts cut from holdout rows).")
@click.option("--max-new-tokens", default=16, show_default=True, type=click.IntRange(min=1),
              help="Tokens generated per prompt, for samples, latency and throughput (a classification "
                   "model's versions generate what their config says), e.g. --max-new-tokens 32.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Batch size for scoring and for the throughput measurement.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="Where the models run.")
@click.option("--max-rows", type=click.IntRange(min=1), help="Score at most this many holdout rows.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads every model runs with, recorded in the results (default: half the CPUs, "
                   "at least 1, at most 4; see docs/eval.md#threads), e.g. --threads 2.")
@click.option("--no-parent", is_flag=True,
              help="Do not measure a converted (ct2) candidate's parent, so the report shows no conversion cost.")
@click.option("--alias", help="The alias the candidate is proposed for (default: the alias MODEL@REF names).")
@repo_option
def eval_command(ref: str, baseline: str | None, baseline_rev: str | None, no_baseline: bool,
                 dataset: str | None, split: str, out: Path, samples: int, max_new_tokens: int,
                 batch_size: int, device: str, max_rows: int | None, threads: int | None, no_parent: bool,
                 alias: str | None, repo_dir: Path) -> None:
    """Evaluate a model version (and its baseline) on a data set's holdout split.

    Measures loss and perplexity, per-request latency (p50/p95), batched throughput and size, and
    records sample completions. A converted (ct2) candidate is also compared with its parent, to
    show what the conversion cost. Every delta carries a paired bootstrap confidence interval.
    A classification model's versions (prompt, LoRA, hf, ct2) instead predict the same rows: accuracy,
    macro accuracy, invalid outputs, p50 latency, tokens per prediction, per-class scores.
    The model's gates are checked: when one fails, the results are still written and the exit
    status is 3. See docs/eval.md.

    \b
    Examples:
      gitops eval review-autocomplete@v3                    # vs @production, on its data set
      gitops eval review-autocomplete@staging --baseline review-autocomplete@v1 --out v3.json
      gitops eval review-autocomplete@v3 --dataset reviews@v2 --max-rows 200 --device cuda
      gitops eval review-autocomplete@v4 --threads 2          # a ct2 version: also vs its parent
      gitops eval review-autocomplete@v3 --baseline review-autocomplete@production --baseline-rev "$BASE_SHA"
      gitops eval ratings@v2 --baseline ratings@v1 --dataset reviews@v1 --max-rows 200   # classification
    """
    from gitops import api

    if no_baseline and baseline:
        raise click.UsageError("--baseline and --no-baseline exclude each other")
    ws = workspace_of(repo_dir)
    chosen = None if no_baseline else (baseline or "auto")
    alias = alias or None  # a workflow passes --alias "" for a candidate that no alias names
    plan = api.plan_eval(ws, ref, baseline=chosen, dataset=dataset, split=split, baseline_rev=baseline_rev,
                         parent=not no_parent)
    for note in plan.notes:
        click.echo(note, err=True)
    against = f" against {plan.baseline}" if plan.baseline else ""
    click.echo(f"Evaluating {ref}{against} on {plan.dataset} ({split}) ...", err=True)
    with _ProgressBar() as bar:
        if plan.task == "classification":  # every side predicts the rows; --max-new-tokens is the versions' own
            results = api.evaluate_classification(ws, plan, samples=samples, batch_size=batch_size, device=device,
                                                  max_rows=max_rows, threads=threads, alias=alias, progress=bar)
        else:
            results = api.evaluate(ws, ref, plan=plan, split=split, samples=samples, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, device=device, max_rows=max_rows, threads=threads,
                                   alias=alias, progress=bar)
    try:
        results.save(out)
    except OSError as exc:
        raise EvalError(f"cannot write the results to {out}: {exc.strerror or exc}") from None
    click.echo(summary(results))
    click.echo(f"Results written to {out}", err=True)
    if results.verdict != "pass":
        failed = "; ".join(g.message for g in results.failed_gates)
        raise GateFailed(f"{len(results.failed_gates)} gate(s) failed: {failed} (results in {out})")


class _ProgressBar:
    """A tqdm bar on stderr that restarts for each stage (``candidate loss``, ``baseline latency``)."""

    def __init__(self) -> None:
        self.bar = None
        self.stage = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, leave=False, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]")
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def summary(results: EvalResults) -> str:
    """Metrics side by side (candidate, baseline, parent), then one line per gate."""
    from gitops.eval.gates import format_number

    others = [m for m in (results.baseline, results.parent) if m is not None]
    cand = results.candidate.metrics
    names = list(cand) + [n for m in others for n in m.metrics if n not in cand]
    headers = ["metric", results.candidate.ref] + [m.ref for m in others]
    rows = [[n, format_number(cand.get(n))] + [format_number(m.metrics.get(n)) for m in others] for n in names]
    lines = [table(rows, headers), f"threads: {results.environment.threads}"]
    for gate in results.gates:
        mark = "skip" if gate.skipped else ("pass" if gate.passed else "FAIL")
        lines.append(f"[{mark}] {gate.message}")
    lines.append(f"verdict: {results.verdict}")
    return "\n".join(lines)


@click.command("judge")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--endpoint", required=True,
              help="Base URL of an OpenAI-compatible server, e.g. --endpoint http://127.0.0.1:8000.")
@click.option("--model", "judge_model", required=True, help="The judge's model name there, e.g. --model judge@production.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, e.g. --json > judge.json.")
def judge_command(results: Path, endpoint: str, judge_model: str, as_json: bool) -> None:
    """Let a stronger model judge an evaluation's samples: candidate vs baseline, both orders, win rate.

    \b
    Example:
      gitops judge eval.json --endpoint http://127.0.0.1:8000 --model judge@production
    """
    from gitops import api

    result = api.judge(results, endpoint, judge_model)
    if as_json:
        from gitops.cli.output import echo_json

        echo_json(result.to_dict())
        return
    ci = f" [{result.win_rate_ci[0]:.1%}, {result.win_rate_ci[1]:.1%}]" if result.win_rate_ci else ""
    click.echo(f"candidate win rate {result.win_rate:.1%}{ci} over {result.samples} samples "
               f"({result.wins} won, {result.losses} lost, {result.ties} tied; judge consistent across orders "
               f"in {result.consistent:.0%})")


def register(group: click.Group) -> None:
    group.add_command(eval_command)
    group.add_command(judge_command)
