"""``gitops eval``: a registered candidate (and its baseline) measured on a data set's holdout.

Every version is loaded through its registry entry (:func:`gitops.core.materialize.loadable`
pulls it through DVC and refuses files that do not match the recorded md5), opened with the backend
for its format, and measured by :mod:`gitops.eval.harness` with one fixed configuration, so the
candidate and the baseline see the same rows, the same prompts and the same decoding rules. The
model's gates are then held against the candidate. The library returns the results document; the
CLI writes it and turns a failed gate into exit code 3.

:func:`plan_eval` resolves everything (candidate, baseline, the data set version) once; the CLI
shows the plan and hands it to :func:`evaluate`, so one command reads the registry once.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from gitops import jsonio, timestamps
from gitops.core import refs
from gitops.core.materialize import loadable
from gitops.core.schema import Dataset, DatasetVersion, Model, Version
from gitops.core.settings import JudgeConfig
from gitops.core.task import CLASSIFICATION
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import EvalError, GitopsError, NotFoundError, shown
from gitops.eval import harness
from gitops.eval import judge as judging
from gitops.eval.compare import compare, statistics
from gitops.eval.gates import evaluate_gates
from gitops.eval.harness import MeasureConfig, Progress, Prompt
from gitops.eval.results import CurvePoint, DatasetInfo, Environment, EvalResults, GenerationInfo, ModelResult, Sample
from gitops.ml import prompting
from gitops.ml.bases import base_model_dir
from gitops.ml.prompting import PromptFormat

AUTO = "auto"
DEFAULT_BASELINE_ALIAS = "production"
CURVE_FILE = "loss_curve.json"  # written by gitops train next to the weights
MAX_DEFAULT_THREADS = 4
UNTRAINED_FORMATS = ("ct2",)   # made by conversion: no training curve of their own


def default_threads() -> int:
    """Half the CPUs this process may run on, at least 1 and at most 4 (docs/eval.md#threads).

    Why not all: torch gains almost nothing from a second thread at batch size 1, and when its
    intra-op threads outnumber the free cores (a CI runner running two jobs, a laptop) they spin and
    stall, which slows the hf side far more than CTranslate2 and makes latency depend on the load.
    Half the logical CPUs is the physical cores on an SMT machine; past 4 threads these small models
    gain little. The number is recorded in the results so runs compare like with like."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_THREADS, cpus // 2))


@dataclass
class EvalPlan:
    """What an evaluation will compare, resolved before any model is loaded.

    ``notes`` are sentences for the user (why there is no baseline, which data set was chosen).
    """

    model: str
    candidate: str                # MODEL@REF as given
    baseline: str | None          # MODEL@REF, or None for no baseline
    dataset: str                  # NAME@vN, the concrete data set version
    split: str
    notes: list[str] = field(default_factory=list)
    parent: str | None = None     # MODEL@vN: a converted candidate's source, measured too
    data: tuple[Dataset, DatasetVersion] | None = field(default=None, repr=False)  # what ``dataset`` names
    judge: JudgeConfig | None = None  # the LLM judge that will compare candidate and baseline samples
    task: str = "completion"      # the model's task: classification is scored by gitops.predict.evaluation


def plan_eval(ws: Workspace, ref: str, *, baseline: str | None = AUTO, dataset: str | None = None,
              split: str = "test", baseline_rev: str | None = None, parent: bool = True,
              judge: JudgeConfig | None = None) -> EvalPlan:
    """Resolve the candidate, the baseline (``auto``: ``MODEL@production`` if that alias exists),
    the data set (default: the data set the candidate was trained on, at ``latest``) and, for a
    converted candidate, its parent (unless ``parent`` is False).

    ``baseline_rev``: read the baseline's alias as it was at this git ref (a PR's base commit), so a
    PR that moves ``production`` is compared with the production it replaces.

    ``judge``: an LLM judge for the samples (``eval.judge`` of gitops.yaml); dropped, with a note,
    when there is no baseline to judge against or the model is a classification model."""
    if baseline_rev is not None:  # a pull request's evaluation: DVC only through the base's remotes
        ws.require_dvc_config_of(baseline_rev)
    model, version = ws.registry().resolve(ref)
    notes: list[str] = []
    if baseline_rev is not None and baseline is not None:
        base_ref = _baseline_at(ws, baseline_rev, model, version, baseline, notes)
    else:
        base_ref = _plan_baseline(model, version, baseline, notes)
    if dataset is None:
        if not version.dataset:
            raise EvalError(f"{model.name}@{version.id} records no data set; choose one with "
                            f"--dataset NAME@latest")
        dataset = f"{refs.parse_ref(version.dataset, 'data set').name}@latest"
        notes.append(f"data set: {dataset} (the candidate was trained on {version.dataset})")
    data = batches.resolve(ws, dataset)
    if split not in data[0].splits and split != "all":  # all: a classification model's every row
        raise EvalError(f"--split {shown(split)}: data set {data[0].name} has splits {', '.join(data[0].splits)}")
    if base_ref is not None:
        ws.registry().resolve(base_ref)  # a missing baseline is named now, not after the candidate's run
    parent_ref = None
    if parent and version.format in UNTRAINED_FORMATS and version.parent:
        parent_ref = f"{model.name}@{version.parent}"
        notes.append(f"parent: {parent_ref} ({version.id} is a {version.format} conversion of it; measured too, "
                     "to show what the conversion cost)")
    return EvalPlan(model.name, ref, base_ref, f"{data[0].name}@{data[1].id}", split, notes, data=data,
                    parent=parent_ref, judge=_plan_judge(model, base_ref, judge, notes),
                    task="classification" if model.classification is not None else "completion")


def _plan_judge(model: Model, baseline: str | None, judge: JudgeConfig | None,
                notes: list[str]) -> JudgeConfig | None:
    if judge is None:
        return None
    if model.task == CLASSIFICATION:
        notes.append(f"no judge: {model.name} is a classification model, scored by its labels, not compared "
                     "as free text")
        return None
    if baseline is None:
        notes.append("no judge: there is no baseline for it to compare the candidate with")
        return None
    notes.append(f"judge: {judge.model} at {judge.host}, on the samples in both orders")
    return judge


def _plan_baseline(model: Model, version: Version, baseline: str | None, notes: list[str]) -> str | None:
    if baseline != AUTO:
        if baseline is not None and refs.parse_ref(baseline, require_ref=True).name != model.name:
            notes.append(f"baseline {baseline} is another model than {model.name}; gates compare them anyway")
        return baseline
    alias = model.aliases.get(DEFAULT_BASELINE_ALIAS)
    if alias is None:
        notes.append(f"no baseline: {model.name} has no '{DEFAULT_BASELINE_ALIAS}' alias yet "
                     "(relative gates are skipped)")
        return None
    if alias.version == version.id:
        notes.append(f"no baseline: the candidate is {model.name}@{DEFAULT_BASELINE_ALIAS} itself")
        return None
    return f"{model.name}@{DEFAULT_BASELINE_ALIAS}"


def _baseline_at(ws: Workspace, rev: str, model: Model, version: Version, baseline: str,
                 notes: list[str]) -> str | None:
    """Pin ``baseline`` to the version it named at git ref ``rev`` (versions are immutable, so that
    version is still registered now). An alias that did not exist then means no baseline."""
    if baseline == AUTO:
        baseline = f"{model.name}@{DEFAULT_BASELINE_ALIAS}"
    try:
        old_model, old_version = ws.registry_at(rev).resolve(baseline)
    except NotFoundError:
        notes.append(f"no baseline: {baseline} did not exist at {rev} (relative gates are skipped)")
        return None
    if old_model.name == model.name and old_version.id == version.id:
        notes.append(f"no baseline: the candidate is {baseline} as of {rev}")
        return None
    notes.append(f"baseline: {baseline} as of {rev} is {old_model.name}@{old_version.id}")
    return f"{old_model.name}@{old_version.id}"


def evaluate(ws: Workspace, ref: str, *, baseline: str | None = AUTO, dataset: str | None = None,
             split: str = "test", samples: int = 8, max_new_tokens: int = 16, batch_size: int = 16,
             device: str = "cpu", max_rows: int | None = None, threads: int | None = None,
             alias: str | None = None, progress: Progress | None = None,
             baseline_rev: str | None = None, plan: EvalPlan | None = None) -> EvalResults:
    """Evaluate ``ref`` (and its baseline, and a converted candidate's parent) on ``split`` of the
    data set; return the results document.

    ``plan`` is what :func:`plan_eval` returned for these arguments (planned here when None).
    ``max_rows`` caps the holdout rows scored (the first ones, in data set order). ``threads`` is
    the CPU thread count of every model (default :func:`default_threads`). ``alias`` is the alias
    the candidate is proposed for (default: the alias ``ref`` names, if it names one). Gates are
    evaluated and recorded; raising :class:`GateFailed` is the caller's choice (the CLI does, after
    writing the document).
    """
    if samples < 0 or max_new_tokens < 1 or batch_size < 1 or (max_rows is not None and max_rows < 1):
        raise EvalError("samples must be >= 0, and max_new_tokens, batch_size and max_rows >= 1")
    if threads is not None and threads < 1:
        raise EvalError("threads must be at least 1")
    if plan is None:
        plan = plan_eval(ws, ref, baseline=baseline, dataset=dataset, split=split, baseline_rev=baseline_rev)
    if plan.task == "classification":
        raise EvalError(f"{plan.model} is a classification model; evaluate it with "
                        "gitops.api.evaluate_classification (what gitops eval runs for it)")
    threads = threads or default_threads()
    if plan.judge is not None:  # before any model loads: an unreachable judge costs seconds, not a run
        judging.check(plan.judge)
        samples = max(samples, plan.judge.samples or 0)
    fmt = PromptFormat.from_config(ws.registry().resolve(plan.candidate)[1].config)
    texts, prompts = holdout(ws, plan, fmt, max_rows)
    config = MeasureConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, samples=samples, chat=fmt.chat)

    def run(target: str, label: str) -> tuple[ModelResult, harness.Measurement]:
        return _evaluate_one(ws, target, texts, prompts, config, device, threads, _prefixed(progress, label))

    cand, cand_done = run(plan.candidate, "candidate")
    base, base_done = run(plan.baseline, "baseline") if plan.baseline is not None else (None, None)
    par, par_done = (None, None)
    if plan.parent is not None:  # the baseline may be the parent itself: measure it once
        if base is not None and _same_version(ws, plan.baseline, plan.parent):
            par, par_done = dataclasses.replace(base, ref=plan.parent), base_done
        else:
            par, par_done = run(plan.parent, "parent")
    stats = statistics()
    comparisons = [compare(against, other.version, cand_done, done, stats)
                   for against, other, done in (("baseline", base, base_done), ("parent", par, par_done))
                   if other is not None and done is not None]
    shown = len(cand_done.completions)
    sample_rows = [Sample(prompt=p.text, candidate=cand_done.completions[i], reference=p.reference,
                          baseline=base_done.completions[i] if base_done is not None else None)
                   for i, p in enumerate(prompts[:shown])]
    judged = judging.judge_samples(plan.judge, sample_rows) if plan.judge is not None and base else None
    gated = {**cand.metrics, judging.GATE_METRIC: judged.win_rate} if judged else cand.metrics
    model = ws.registry().model(plan.model)
    gates = evaluate_gates(model.gates, gated, base.metrics if base is not None else None,
                           next((c.deltas for c in comparisons if c.against == "baseline"), None))
    parsed = refs.parse_ref(ref)
    if alias is None and parsed.ref and not parsed.is_version and parsed.ref != "latest":
        alias = parsed.ref
    return EvalResults(
        created_at=timestamps.utc_now(),
        model=plan.model, alias=alias,
        dataset=DatasetInfo(ref=plan.dataset, split=split, rows=cand_done.rows),
        generation=GenerationInfo(max_new_tokens=max_new_tokens, greedy=True, batch_size=batch_size,
                                  prompt_words=harness.PROMPT_WORDS, samples=shown),
        candidate=cand, baseline=base, parent=par, comparisons=comparisons, statistics=stats,
        gates=gates, samples=sample_rows, judge=judged,
        environment=Environment.collect(_device_label(device), threads))


def _same_version(ws: Workspace, a: str | None, b: str) -> bool:
    """Whether two references name the same version of the same model."""
    if a is None:
        return False
    (ma, va), (mb, vb) = ws.registry().resolve(a), ws.registry().resolve(b)
    return (ma.name, va.id) == (mb.name, vb.id)


def holdout(ws: Workspace, plan: EvalPlan, fmt: PromptFormat,
            max_rows: int | None) -> tuple[list[str], list[Prompt]]:
    """The texts to score and the prompts to complete, from the holdout rows formatted as the
    candidate was trained (:mod:`gitops.ml.prompting`): the same strings for candidate and baseline."""
    dataset, version = plan.data or batches.resolve(ws, plan.dataset)
    fmt.check(list(dataset.columns), dataset.name)
    pairs = [fmt.pair(row, dataset.text_field) for row in batches.rows_of(ws, dataset, version, plan.split)]
    pairs = [p for p in pairs if isinstance(p[0], str) and (p[0] + (p[1] or "")).strip()]
    if not pairs:
        raise EvalError(f"data set {plan.dataset} has no rows in split '{plan.split}'; ingest more data "
                        "or choose another --split")
    pairs = pairs[:max_rows] if max_rows is not None else pairs
    if fmt.response is None:  # plain text: prompts are cut from the rows' first words
        texts = [prompt for prompt, _ in pairs]
        return texts, harness.make_prompts(texts)
    tokenizer = _candidate_tokenizer(ws, plan.candidate) if fmt.chat else None
    texts = [prompting.render(tokenizer, pair, fmt.chat) for pair in pairs]
    prompts = [Prompt(prompting.render_prompt(tokenizer, prompt, fmt.chat), response or "")
               for prompt, response in pairs]
    return texts, prompts


def _candidate_tokenizer(ws: Workspace, ref: str):  # untyped: a transformers tokenizer
    """The candidate's tokenizer, whose chat template formats the rows for both sides."""
    from gitops.ml.loading import load_tokenizer

    model, version = ws.registry().resolve(ref)
    loaded = loadable(ws, model.name, version)
    base = _base_dir(ws, model, version) if loaded.format == "peft-lora" else None
    return load_tokenizer(loaded.weights, fallback=base)


def _evaluate_one(ws: Workspace, ref: str, texts: list[str], prompts: list[Prompt],
                  config: MeasureConfig, device: str, threads: int | None,
                  progress: Progress | None) -> tuple[ModelResult, harness.Measurement]:
    """Load one version through DVC (md5-checked), measure it, close it."""
    from gitops.ml.backends import open_backend

    model, version = ws.registry().resolve(ref)
    if version.format not in ("hf", "peft-lora", "ct2"):
        hint = "; score a prompt version of a classification model with gitops compare" \
            if version.format == "prompt" else ""
        raise EvalError(f"{model.name}@{version.id} has format '{version.format}', which gitops eval "
                        f"cannot run (hf, peft-lora and ct2 can){hint}")
    _check_device(device, version.format)
    if progress is not None:
        progress("loading", 0, 1)
    loaded = loadable(ws, model.name, version)  # a pinned peft-lora version: merged into its base, cached
    base_dir = _base_dir(ws, model, version) if loaded.format == "peft-lora" else None
    with open_backend(loaded.weights, loaded.format, base_dir=base_dir, device=device, threads=threads) as backend:
        measured = harness.measure(backend, texts, prompts, config, weights_dir=loaded.files, progress=progress)
    curve = [] if version.format in UNTRAINED_FORMATS else read_curve(loaded.files)  # never trained: no curve
    result = ModelResult.from_version(ref, version, measured.metrics, curve)
    return result, measured


def _check_device(device: str, fmt: str) -> None:
    """Refuse ``cuda`` up front on a machine without it: the engines' own errors are not ours."""
    if not device.startswith("cuda"):
        return
    if fmt == "ct2":
        import ctranslate2

        available = ctranslate2.get_cuda_device_count() > 0
    else:
        import torch

        available = torch.cuda.is_available()
    if not available:
        engine = "CTranslate2" if fmt == "ct2" else "torch"
        raise EvalError(f"--device {device} was asked for, but {engine} sees no CUDA device on this machine; "
                        "use --device cpu")


def _base_dir(ws: Workspace, model: Model, version: Version) -> Path | None:
    if version.format != "peft-lora":
        return None
    base = base_model_dir(ws, version.base_model)
    if base is not None and not isinstance(base, Path):
        raise NotFoundError(f"{model.name}@{version.id}: its base model '{base}' is neither a registry "
                            "version nor a local directory")
    return base


def read_curve(weights_dir: Path) -> list[CurvePoint]:
    """The training curve saved next to the weights (``loss_curve.json``), or [] when absent or
    unreadable: the curve is a nicety of the report, never a reason to fail an evaluation."""
    path = Path(weights_dir) / CURVE_FILE
    try:
        points = jsonio.load_file(path, jsonio.MAX_BYTES)
        return [CurvePoint(step=int(p["step"]), train_loss=_finite(p.get("train_loss")),
                           eval_loss=_finite(p.get("eval_loss"))) for p in points]
    except (GitopsError, OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def _finite(value: object) -> float | None:
    import math

    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _prefixed(progress: Progress | None, label: str) -> Progress | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{label} {stage}", done, total)


def _device_label(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch

            return f"{device} ({torch.cuda.get_device_name(0)})"
        except Exception:  # noqa: BLE001 - a label only; the backend reports real device errors
            return device
    return device
