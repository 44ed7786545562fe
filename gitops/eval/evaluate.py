"""``gitops eval``: a registered candidate (and its baseline) measured on a data set's holdout.

Every version is loaded through its registry entry (:func:`gitops.core.materialize.loadable`
pulls it through DVC and refuses files that do not match the recorded md5), opened with the backend
for its format, and measured by :mod:`gitops.eval.harness` with one fixed configuration, so the
candidate and the baseline see the same rows, the same prompts and the same decoding rules. The
model's gates are then held against the candidate. The library returns the results document; the
CLI writes it and turns a failed gate into exit code 3.

:func:`plan_eval` resolves everything (candidate, baseline, parent, the data set version) once
and pins each side to the version it named then (:class:`Side`); the CLI shows the plan and hands
it to ``gitops.api.evaluate`` (which dispatches on the task, above this floor), so one command
reads the registry once and measures exactly what it showed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from gitops import jsonio, timestamps
from gitops.core import refs
from gitops.core.materialize import loadable
from gitops.core.reader import Registry
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
from gitops.ml import textformat
from gitops.ml.bases import base_model_dir
from gitops.ml.textformat import PromptFormat

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


@dataclass(frozen=True)
class Side:
    """One version an evaluation measures: as the user named it, and what that named at planning.

    ``label`` is the reference as given (``m@staging``: the results document shows it); ``ref`` is
    the version it resolved to then, and ``model``/``version`` are its records. Nothing after the
    plan looks the label up again, so an alias moved mid-run cannot change what is measured."""

    label: str
    ref: refs.Ref
    model: Model = field(repr=False, compare=False)
    version: Version = field(repr=False, compare=False)


@dataclass(frozen=True)
class EvalOptions:
    """How an evaluation runs (the plan says what it measures): the same options for every task.

    ``max_rows`` caps the holdout rows scored (the first ones, in data set order); ``threads`` is
    the CPU thread count of every model (default :func:`default_threads`); ``alias`` is the alias
    the candidate is proposed for (default: the alias the candidate's reference names);
    ``max_new_tokens`` is a completion model's (a classification version generates what its config
    says)."""

    samples: int = 8
    max_new_tokens: int = 16
    batch_size: int = 16
    device: str = "cpu"
    max_rows: int | None = None
    threads: int | None = None
    alias: str | None = None
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.samples < 0 or self.max_new_tokens < 1 or self.batch_size < 1 or \
                (self.max_rows is not None and self.max_rows < 1):
            raise EvalError("samples must be >= 0, and max_new_tokens, batch_size and max_rows >= 1")
        if self.threads is not None and self.threads < 1:
            raise EvalError("threads must be at least 1")


@dataclass(frozen=True)
class EvalPlan:
    """What an evaluation will compare, resolved once before any model is loaded: every side
    pinned to a version (with its records), the data set version and its split.

    ``notes`` are sentences for the user (why there is no baseline, which data set was chosen).
    ``alias`` is the alias the candidate's reference named (``m@staging``: ``staging``), if any.
    """

    candidate: Side
    baseline: Side | None         # None: no baseline
    dataset: Dataset = field(repr=False)
    dataset_version: DatasetVersion = field(repr=False)
    split: str
    notes: tuple[str, ...] = ()
    parent: Side | None = None    # a converted candidate's source, measured too
    judge: JudgeConfig | None = None  # the LLM judge that will compare candidate and baseline samples
    alias: str | None = None

    @property
    def model(self) -> Model:
        """The candidate's model (its gates judge the run)."""
        return self.candidate.model

    @property
    def dataset_ref(self) -> str:
        """``NAME@vN``: the data set version every side is measured on."""
        return f"{self.dataset.name}@{self.dataset_version.id}"

    @property
    def task(self) -> str:
        """``classification`` (scored by :mod:`gitops.predict.evaluation`) or ``completion``."""
        return "classification" if self.model.classification is not None else "completion"

    def sides(self) -> dict[str, Side]:
        """The sides to measure, by role (candidate, baseline, parent), in that order."""
        return {name: side for name, side in (("candidate", self.candidate), ("baseline", self.baseline),
                                              ("parent", self.parent)) if side is not None}


def plan_eval(ws: Workspace, ref: str, *, baseline: str | None = AUTO, dataset: str | None = None,
              split: str = "test", baseline_rev: str | None = None, parent: bool = True,
              judge: JudgeConfig | None = None) -> EvalPlan:
    """Resolve the candidate, the baseline (``auto``: ``MODEL@production`` if that alias exists),
    the data set (default: the data set the candidate was trained on, at ``latest``) and, for a
    converted candidate, its parent (unless ``parent`` is False), each once and pinned.

    ``baseline_rev``: read the baseline's alias as it was at this git ref (a PR's base commit), so a
    PR that moves ``production`` is compared with the production it replaces.

    ``judge``: an LLM judge for the samples (``eval.judge`` of gitops.yaml); dropped, with a note,
    when there is no baseline to judge against or the model is a classification model."""
    if baseline_rev is not None:  # a pull request's evaluation: DVC only through the base's remotes
        ws.require_dvc_config_of(baseline_rev)
    registry = ws.registry()
    parsed = refs.parse_ref(ref, require_ref=True)
    candidate = _side(registry, ref)
    model, version = candidate.model, candidate.version
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
    data, data_version = batches.resolve(ws, dataset)
    if split not in data.splits and split != "all":  # all: a classification model's every row
        raise EvalError(f"--split {shown(split)}: data set {data.name} has splits {', '.join(data.splits)}")
    base_side = _side(registry, base_ref) if base_ref is not None else None  # a missing one is named now
    parent_side = None
    if parent and version.format in UNTRAINED_FORMATS and version.parent:
        parent_side = _side(registry, f"{model.name}@{version.parent}")
        notes.append(f"parent: {parent_side.label} ({version.id} is a {version.format} conversion of it; "
                     "measured too, to show what the conversion cost)")
    alias = parsed.ref if parsed.ref and not parsed.is_version and parsed.ref != "latest" else None
    return EvalPlan(candidate, base_side, data, data_version, split, parent=parent_side,
                    judge=_plan_judge(model, base_ref, judge, notes), alias=alias, notes=tuple(notes))


def _side(registry: Registry, label: str) -> Side:
    model, version = registry.resolve(label)
    return Side(label, refs.Ref(model.name, version.id), model, version)


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


def evaluate_completion(ws: Workspace, plan: EvalPlan, options: EvalOptions | None = None) -> EvalResults:
    """Evaluate ``plan``'s candidate (and its baseline, and a converted candidate's parent) on its
    data set version's split; return the results document. A classification model's plan is
    measured by :func:`gitops.predict.evaluation.evaluate` (``gitops.api.evaluate``), which
    dispatches on the task and calls this for a completion model.

    Gates are evaluated and recorded; raising :class:`GateFailed` is the caller's choice (the CLI
    does, after writing the document)."""
    options = options or EvalOptions()
    if plan.task == "classification":
        raise EvalError(f"{plan.model.name} is a classification model; evaluate it with gitops.api.evaluate "
                        "(what gitops eval runs for it)")
    threads = options.threads or default_threads()
    samples = options.samples
    if plan.judge is not None:  # before any model loads: an unreachable judge costs seconds, not a run
        judging.check(plan.judge)
        samples = max(samples, plan.judge.samples or 0)
    fmt = PromptFormat.from_config(plan.candidate.version.config)
    texts, prompts = holdout(ws, plan, fmt, options.max_rows)
    config = MeasureConfig(max_new_tokens=options.max_new_tokens, batch_size=options.batch_size, samples=samples,
                           chat=fmt.chat)

    def run(side: Side, label: str) -> tuple[ModelResult, harness.Measurement]:
        return _evaluate_one(ws, side, texts, prompts, config, options.device, threads,
                             _prefixed(options.progress, label))

    cand, cand_done = run(plan.candidate, "candidate")
    base, base_done = run(plan.baseline, "baseline") if plan.baseline is not None else (None, None)
    par, par_done = (None, None)
    if plan.parent is not None:  # the baseline may be the parent itself: measure it once
        if base is not None and plan.baseline is not None and plan.baseline.ref == plan.parent.ref:
            par, par_done = dataclasses.replace(base, ref=plan.parent.label), base_done
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
    gates = evaluate_gates(plan.model.gates, gated, base.metrics if base is not None else None,
                           next((c.deltas for c in comparisons if c.against == "baseline"), None))
    return EvalResults(
        created_at=timestamps.utc_now(),
        model=plan.model.name, alias=options.alias or plan.alias,
        dataset=DatasetInfo(ref=plan.dataset_ref, split=plan.split, rows=cand_done.rows),
        generation=GenerationInfo(max_new_tokens=options.max_new_tokens, greedy=True,
                                  batch_size=options.batch_size, prompt_words=harness.PROMPT_WORDS, samples=shown),
        candidate=cand, baseline=base, parent=par, comparisons=comparisons, statistics=stats,
        gates=gates, samples=sample_rows, judge=judged,
        environment=Environment.collect(_device_label(options.device), threads))


def holdout(ws: Workspace, plan: EvalPlan, fmt: PromptFormat,
            max_rows: int | None) -> tuple[list[str], list[Prompt]]:
    """The texts to score and the prompts to complete, from the holdout rows formatted as the
    candidate was trained (:mod:`gitops.ml.textformat`): the same strings for candidate and baseline."""
    dataset, version = plan.dataset, plan.dataset_version
    fmt.check(list(dataset.columns), dataset.name)
    pairs = [fmt.pair(row, dataset.text_field) for row in batches.rows_of(ws, dataset, version, plan.split)]
    pairs = [p for p in pairs if isinstance(p[0], str) and (p[0] + (p[1] or "")).strip()]
    if not pairs:
        raise EvalError(f"data set {plan.dataset_ref} has no rows in split '{plan.split}'; ingest more data "
                        "or choose another --split")
    pairs = pairs[:max_rows] if max_rows is not None else pairs
    if fmt.response is None:  # plain text: prompts are cut from the rows' first words
        texts = [prompt for prompt, _ in pairs]
        return texts, harness.make_prompts(texts)
    tokenizer = _candidate_tokenizer(ws, plan.candidate) if fmt.chat else None
    texts = [textformat.render(tokenizer, pair, fmt.chat) for pair in pairs]
    prompts = [Prompt(textformat.render_prompt(tokenizer, prompt, fmt.chat), response or "")
               for prompt, response in pairs]
    return texts, prompts


def _candidate_tokenizer(ws: Workspace, candidate: Side):  # untyped: a transformers tokenizer
    """The candidate's tokenizer, whose chat template formats the rows for both sides."""
    from gitops.ml.loading import load_tokenizer

    model, version = candidate.model, candidate.version
    loaded = loadable(ws, model.name, version)
    base = _base_dir(ws, model, version) if loaded.format == "peft-lora" else None
    return load_tokenizer(loaded.weights, fallback=base)


def _evaluate_one(ws: Workspace, side: Side, texts: list[str], prompts: list[Prompt],
                  config: MeasureConfig, device: str, threads: int | None,
                  progress: Progress | None) -> tuple[ModelResult, harness.Measurement]:
    """Load one version through DVC (md5-checked), measure it, close it."""
    from gitops.ml.backends import open_backend

    model, version = side.model, side.version
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
    result = ModelResult.from_version(side.label, version, measured.metrics, curve)
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
