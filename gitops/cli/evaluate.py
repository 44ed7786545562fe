"""``gitops eval``: measure a candidate against its baseline and write the results document."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitops.cli.common import repo_option, workspace_of
from gitops.cli.output import table
from gitops.cli.progress import STAGE_FORMAT, StageBar
from gitops.errors import EvalError, GateFailed

if TYPE_CHECKING:
    from gitops.core.settings import JudgeConfig
    from gitops.core.workspace import Workspace
    from gitops.eval.results import EvalResults, JudgeSummary


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
@click.option("--judge-endpoint", metavar="URL",
              help="An OpenAI-compatible server whose model judges the samples (overrides eval.judge.endpoint "
                   "of gitops.yaml; it receives the holdout's text), e.g. --judge-endpoint http://127.0.0.1:8000.")
@click.option("--judge-model", metavar="NAME",
              help="The judge's model name at that server (overrides eval.judge.model), "
                   "e.g. --judge-model judge@production.")
@click.option("--no-judge", is_flag=True, help="Do not run the judge configured in gitops.yaml, e.g. for a quick "
                                               "local run: gitops eval m@v3 --no-judge.")
@repo_option
def eval_command(ref: str, baseline: str | None, baseline_rev: str | None, no_baseline: bool,
                 dataset: str | None, split: str, out: Path, samples: int, max_new_tokens: int,
                 batch_size: int, device: str, max_rows: int | None, threads: int | None, no_parent: bool,
                 alias: str | None, judge_endpoint: str | None, judge_model: str | None, no_judge: bool,
                 repo_dir: Path) -> None:
    """Evaluate a model version (and its baseline) on a data set's holdout split.

    Measures loss and perplexity, per-request latency (p50/p95), batched throughput and size, and
    records sample completions. A converted (ct2) candidate is also compared with its parent, to
    show what the conversion cost. Every delta carries a paired bootstrap confidence interval.
    With a judge (eval.judge in gitops.yaml, or --judge-endpoint and --judge-model), a model behind
    an OpenAI-compatible server compares the candidate's and the baseline's samples in both orders
    and the win rate is recorded. A classification model's versions (prompt, LoRA, hf, ct2) instead
    predict the same rows: accuracy, macro accuracy, invalid outputs, p50 latency, tokens per
    prediction, per-class scores. The model's gates are checked: when one fails, the results are
    still written and the exit status is 3. See docs/eval.md.

    \b
    Examples:
      gitops eval review-autocomplete@v3                    # vs @production, on its data set
      gitops eval review-autocomplete@staging --baseline review-autocomplete@v1 --out v3.json
      gitops eval review-autocomplete@v3 --dataset reviews@v2 --max-rows 200 --device cuda
      gitops eval review-autocomplete@v4 --threads 2          # a ct2 version: also vs its parent
      gitops eval review-autocomplete@v3 --baseline review-autocomplete@production --baseline-rev "$BASE_SHA"
      gitops eval review-autocomplete@v3 --judge-endpoint http://127.0.0.1:8000 --judge-model judge@production
      gitops eval review-autocomplete@v3 --no-judge       # skip the judge gitops.yaml configures
      gitops eval ratings@v2 --baseline ratings@v1 --dataset reviews@v1 --max-rows 200   # classification
    """
    from gitops import api
    from gitops.core.refs import alias_problem
    from gitops.yamlio import output_problem

    if no_baseline and baseline:
        raise click.UsageError("--baseline and --no-baseline exclude each other")
    if problem := output_problem(out):  # every option is checked before any model loads
        raise click.BadParameter(problem, param_hint="--out")
    if alias and (problem := alias_problem(alias)):
        raise click.BadParameter(problem, param_hint="--alias")
    ws = workspace_of(repo_dir)
    chosen = None if no_baseline else (baseline or "auto")
    alias = alias or None  # a workflow passes --alias "" for a candidate that no alias names
    judge = _judge_config(ws, judge_endpoint, judge_model, no_judge, baseline_rev)
    plan = api.plan_eval(ws, ref, baseline=chosen, dataset=dataset, split=split, baseline_rev=baseline_rev,
                         parent=not no_parent, judge=judge)
    for note in plan.notes:
        click.echo(note, err=True)
    against = f" against {plan.baseline.label}" if plan.baseline else ""
    click.echo(f"Evaluating {ref}{against} on {plan.dataset_ref} ({plan.split}) ...", err=True)
    # a classification model's versions generate what their config says: --max-new-tokens is for completion
    options = api.EvalOptions(samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size, device=device,
                              max_rows=max_rows, threads=threads, alias=alias)
    with StageBar(bar_format=STAGE_FORMAT) as bar:
        results = api.evaluate(ws, plan, dataclasses.replace(options, progress=bar))
    try:
        results.save(out)
    except OSError as exc:
        raise EvalError(f"cannot write the results to {out}: {exc.strerror or exc}") from None
    click.echo(summary(results))
    click.echo(f"Results written to {out}", err=True)
    if results.verdict != "pass":
        failed = "; ".join(g.message for g in results.failed_gates)
        raise GateFailed(f"{len(results.failed_gates)} gate(s) failed: {failed} (results in {out})")


def _judge_config(ws: Workspace, endpoint: str | None, model: str | None, no_judge: bool,
                  baseline_rev: str | None = None) -> JudgeConfig | None:
    """The judge to run: gitops.yaml's eval.judge with the options laid over it, or none.

    With ``--baseline-rev`` (a pull request's evaluation) eval.judge is read from gitops.yaml at
    that commit, not from the checkout: the PR's own gitops.yaml must not choose where the
    holdout's text is sent before an admin has approved the change."""

    from gitops.core.settings import JudgeConfig, judge_model_problem, url_problem

    if no_judge:
        if endpoint or model:
            raise click.UsageError("--no-judge excludes --judge-endpoint and --judge-model")
        return None
    configured = (ws.settings_at(baseline_rev) if baseline_rev else ws.settings).judge
    if endpoint is None and model is None:
        return configured
    if configured is None and (endpoint is None or model is None):
        missing = "--judge-model" if model is None else "--judge-endpoint"
        raise click.UsageError(f"{missing} is needed too: gitops.yaml configures no eval.judge to take it from")
    if endpoint is not None and (problem := url_problem(endpoint, "token_env")):
        raise click.BadParameter(problem, param_hint="--judge-endpoint")
    if model is not None and (problem := judge_model_problem(model)):
        raise click.BadParameter(problem, param_hint="--judge-model")
    base = configured or JudgeConfig(endpoint=str(endpoint), model=str(model))
    return dataclasses.replace(base, endpoint=endpoint or base.endpoint, model=model or base.model)


def summary(results: EvalResults) -> str:
    """Metrics side by side (candidate, baseline, parent), then one line per gate."""
    from gitops.eval.gates import format_number

    others = [m for m in (results.baseline, results.parent) if m is not None]
    cand = results.candidate.metrics
    names = list(cand) + [n for m in others for n in m.metrics if n not in cand]
    headers = ["metric", results.candidate.ref] + [m.ref for m in others]
    rows = [[n, format_number(cand.get(n))] + [format_number(m.metrics.get(n)) for m in others] for n in names]
    lines = [table(rows, headers), f"threads: {results.environment.threads}"]
    if results.judge is not None:
        lines.append(judge_line(results.judge))
    for gate in results.gates:
        mark = "skip" if gate.skipped else ("pass" if gate.passed else "FAIL")
        lines.append(f"[{mark}] {gate.message}")
    lines.append(f"verdict: {results.verdict}")
    return "\n".join(lines)


@click.command("judge")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--endpoint", required=True,
              help="Base URL of an OpenAI-compatible server, e.g. --endpoint http://127.0.0.1:8000.")
@click.option("--model", "judge_model", required=True,
              help="The judge's model name there, e.g. --model judge@production.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, e.g. --json > judge.json.")
def judge_command(results: Path, endpoint: str, judge_model: str, as_json: bool) -> None:
    """Let a stronger model judge an evaluation's samples: candidate vs baseline, both orders, win rate.

    \b
    Example:
      gitops judge eval.json --endpoint http://127.0.0.1:8000 --model judge@production
    """
    from gitops import api
    from gitops.core.settings import judge_model_problem, url_problem

    if problem := url_problem(endpoint, "token_env"):
        raise click.BadParameter(problem, param_hint="--endpoint")
    if problem := judge_model_problem(judge_model):
        raise click.BadParameter(problem, param_hint="--model")
    result = api.judge(results, endpoint, judge_model)
    if as_json:

        from gitops.cli.output import echo_json

        echo_json(dataclasses.asdict(result))
        return
    click.echo(judge_line(result))


def judge_line(result: JudgeSummary) -> str:
    """``candidate win rate 62.5% [...] over 16 samples (...)``: a judge's verdict in one line."""
    ci = f" [{result.low:.1%}, {result.high:.1%}]" if result.low is not None and result.high is not None else ""
    return (f"judge {result.model} at {result.host}: candidate win rate {result.win_rate:.1%}{ci} over "
            f"{result.samples} samples ({result.wins} won, {result.losses} lost, {result.ties} tied; judge "
            f"consistent across orders in {result.consistent:.0%})")


def register(group: click.Group) -> None:
    group.add_command(eval_command)
    group.add_command(judge_command)
