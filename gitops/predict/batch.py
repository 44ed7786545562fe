"""``gitops predict``: a classification variant over a data set version (or a plain file of new,
unlabeled rows), one prediction per row, each with a probability per label.

Any version of a ``task: classification`` model runs the same way: its rows are rendered by the
model's task template, a prompt version adds its template and retrieved examples
(:mod:`gitops.predict.renderer`, :mod:`gitops.predict.retrieval`) and runs on its pinned base, a
fine-tuned version runs on its own weights. Each raw output goes through the task's extraction
rules; with decoding constrained to the labels (``generation.constrain: labels`` or
``--constrain labels``) every label is scored as the prompt's continuation instead and the
likeliest is the prediction (:mod:`gitops.ml.choices`).

Probabilities: every prediction carries ``probabilities``, one per label of the task in task order,
summing to 1: the softmax of the labels' scores as continuations of the prompt. Constrained decoding
has them for free (they are what it decides by); free decoding scores the labels too after
generating (one more pass over the prompts), so log loss and calibration are measured for every
variant; ``probabilities=False`` skips that pass and writes null.

Rows are predicted in batches of similar length (sorted by their rendered input, so a batch pads
little; the output keeps the data set's order); every finished batch is appended (and fsynced) to
``OUT.partial.jsonl`` (:mod:`gitops.predict.output`), each prediction with its row number and a
digest of the row's key and input, so a killed run resumes where it stopped and a foreign line is
refused; the output (Parquet, CSV or JSON Lines, by extension) is written atomically at the end and
the partial file removed. A backend is opened once per run (once per base in ``compare``).

Everything that can be refused is refused before the model loads: a model without a
classification task, an output path we cannot write, a template naming a column the data set (or
file) lacks, labels in the data outside the vocabulary, a partial file from another run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core import refs
from gitops.core.schema import Model, Version
from gitops.core.task import ClassificationTask, check_columns, check_labels
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError
from gitops.predict import output, scoring
from gitops.predict.head_variant import is_head
from gitops.predict.head_variant import predictions as head_predictions
from gitops.predict.inputs import is_unlabeled, read_input
from gitops.predict.pool import BackendPool
from gitops.predict.prompter import (
    dataset_normalizer,
    is_calibrated,
    open_prompter,
    prompt_config,
)

OUT_FORMATS = (".parquet", ".csv", ".jsonl")
SPLITS_ALL = "all"
DEFAULT_BATCH = 32
CONSTRAIN = ("labels", "none")
MAX_BATCH = 256
MAX_ROWS = 1_000_000
SPLIT_FILE = "file"   # the split a plan of rows from --input FILE reports
COLUMNS = ("key", "input", "label", "prediction", "matched", "raw_output", "prompt_tokens", "completion_tokens",
           "latency_ms", "probabilities")  # probabilities: {label: p} in task order (JSONL object, else JSON text)
Progress = Callable[[int, int], None]


@dataclass
class PredictResult:
    """What a prediction run did: ``rows`` predicted in total, ``resumed`` of them from a partial run;
    ``seconds`` the whole run, ``load_seconds`` the part spent opening the model."""

    ref: str
    dataset: str
    split: str
    out: Path | None
    rows: int
    resumed: int
    seconds: float
    scores: scoring.Scores
    predictions: list[dict[str, Any]] = field(default_factory=list, repr=False)
    constrained: bool = False
    load_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows predicted per second of prediction (opening the model excluded: it is paid once)."""
        done, spent = self.rows - self.resumed, self.seconds - self.load_seconds
        return done / spent if spent > 0 else 0.0


@dataclass
class Plan:
    """A variant resolved and its rows read and checked: everything but the model."""

    ref: str
    model: Model
    version: Version
    task: ClassificationTask
    dataset: str          # NAME@vN, or the --input file's path
    split: str            # a split, all, or file
    rows: list[dict[str, Any]]
    keys: list[str]
    config: dict[str, Any] | None
    constrained: bool = False
    probabilities: bool = True   # free decoding scores the labels too (constrained decoding always has them)

    @property
    def texts(self) -> list[str]:
        """Each row as the task's input template renders it: what every variant reads of it."""
        return [self.task.render(r) for r in self.rows]


def plan_predict(ws: Workspace, ref: str, dataset: str | None, split: str = "test", *, limit: int | None = None,
                 constrain: str | None = None, input_file: Path | None = None,
                 probabilities: bool = True, records: tuple[Model, Version] | None = None) -> Plan:
    """Resolve ``ref``, read and check the rows of ``dataset`` (``split``, or ``all``) or of the plain
    file ``input_file`` (labels optional). ``constrain`` (labels or none) overrides what the
    variant's config says. ``records``: the model and version ``ref`` names, when the caller has
    resolved them already (an evaluation's pinned side): they are used, not looked up again."""
    if constrain is not None and constrain not in CONSTRAIN:
        raise ConfigError(f"--constrain must be one of {', '.join(CONSTRAIN)}, not '{constrain}'")
    if (dataset is None) == (input_file is None):
        raise ConfigError("predict the rows of a data set version (--dataset NAME@vN) or of a file (--input FILE): "
                          "one of the two")
    model, version = records or ws.registry().resolve(refs.parse_ref(ref, require_ref=True))
    task = model.task_for(version)  # the block the version was added with, or a refusal
    if task is None:
        raise ConfigError(f"model '{model.name}' has task '{model.task}'; gitops predict needs 'task: "
                          "classification' with a classification block (docs/tasks.md)")
    config = prompt_config(ws, model, version)  # the reviewed file, never model.yaml's copy alone
    if input_file is not None:
        label, split = str(input_file), SPLIT_FILE
        clean = dataset_normalizer(ws, (config or {}).get("dataset") or version.dataset)
        rows, keys = read_input(Path(input_file), task, (lambda r: r) if clean is None else
                                (lambda r: {k: clean(v) if isinstance(v, str) else v for k, v in r.items()}), MAX_ROWS)
    else:
        assert dataset is not None  # exactly one of dataset and input_file (checked above)
        rows, keys, label = _dataset_rows(ws, task, dataset, split)
    if limit is not None:
        rows, keys = rows[:limit], keys[:limit]
    if len(rows) > MAX_ROWS:
        raise ConfigError(f"{label} has {len(rows)} rows in split '{split}'; predict at most {MAX_ROWS} at once "
                          "(use --limit)")
    if not rows:
        raise ConfigError(f"{label} has no rows in split '{split}'")
    if why := check_labels(task, [r[task.label] for r in rows if not is_unlabeled(r.get(task.label))], label):
        raise ConfigError(why)
    if is_calibrated(config):  # calibration corrects the labels' probabilities: it needs them for every row
        if constrain == "none":
            raise ConfigError(f"{model.name}@{version.id} is calibrated (calibrate: content-free), which predicts "
                              "by scoring the labels; --constrain none does not apply to it")
        constrain = "labels"
    if constrain is None:
        constrain = ((config or {}).get("generation") or {}).get("constrain", "none")
    return Plan(f"{model.name}@{version.id}", model, version, task, label, split, rows, keys, config,
                constrained=constrain == "labels" and not is_head(version),  # a head is never generated
                probabilities=probabilities)


def _dataset_rows(ws: Workspace, task: ClassificationTask, dataset: str,
                  split: str) -> tuple[list[dict[str, Any]], list[str], str]:
    ds, ds_version = batches.resolve(ws, dataset)
    label = f"{ds.name}@{ds_version.id}"
    if why := check_columns(task, ds.columns, label):
        raise ConfigError(why)
    rows = batches.read_rows(ws, label, None if split == SPLITS_ALL else split)
    return rows, [_row_key(r, ds.key) for r in rows], label


def _row_key(row: dict[str, Any], key: list[str]) -> str:
    return "|".join(str(row[k]) for k in key)


def predict(ws: Workspace, ref: str, dataset: str | None = None, *, split: str = "test", out: Path | None = None,
            batch_size: int = DEFAULT_BATCH, limit: int | None = None, device: str = "cpu",
            threads: int | None = None, progress: Progress | None = None, constrain: str | None = None,
            pool: BackendPool | None = None, plan: Plan | None = None, input_file: Path | None = None,
            probabilities: bool = True) -> PredictResult:
    """Predict every row of ``dataset``'s ``split`` (or of ``input_file``) with ``ref``; write ``out``
    when given (resumable). ``pool``: backends shared with other runs of the caller (it closes them);
    else one is opened here. ``plan``: what :func:`plan_predict` returned for these arguments, when
    the caller has it already. ``probabilities`` False: free decoding does not score the labels."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be from 1 to {MAX_BATCH}")
    if out is not None:
        if Path(out).suffix.lower() not in OUT_FORMATS:
            raise ConfigError(f"--out {out}: write .parquet, .csv or .jsonl")
        output.check_out(Path(out))
    plan = plan or plan_predict(ws, ref, dataset, split, limit=limit, constrain=constrain, input_file=input_file,
                                probabilities=probabilities)
    texts = plan.texts
    digests = [output.row_digest(k, t) for k, t in zip(plan.keys, texts, strict=True)]
    partial = output.partial_path(Path(out)) if out is not None else None
    header = _header(plan, digests)
    done = output.resume(partial, header, digests, plan.task.labels) if partial else []
    for d in done:  # the row's own fields come from this run's rows; the model's from the partial file
        d.update(_row_fields(plan, d["row"], texts[d["row"]]))
    resumed = len(done)
    t0, load = time.perf_counter(), 0.0
    if resumed < len(plan.rows):
        own = pool is None
        pool = pool or BackendPool(device, threads)
        try:
            load = run_rows(ws, plan, done, partial, header, batch_size, pool, progress, texts, digests)
        finally:
            if own:
                pool.close()
    seconds = time.perf_counter() - t0
    done.sort(key=lambda r: r["row"])
    if out is not None:
        output.write_predictions(Path(out), done, COLUMNS)
        if partial is not None:
            partial.unlink(missing_ok=True)
    return PredictResult(plan.ref, plan.dataset, plan.split, Path(out) if out else None, len(done), resumed, seconds,
                         scoring.score(done, plan.task.labels), done, plan.constrained, load)


def length_order(plan: Plan, skip: set[int]) -> list[int]:
    """Row numbers not in ``skip``, shortest rendered input first (ties in data set order): batches
    of similar length pad little. The same rows give the same order, so a resumed run batches the
    remaining rows as the killed one would have."""
    return sorted((i for i in range(len(plan.rows)) if i not in skip),
                  key=lambda i: (len(plan.task.render(plan.rows[i])), i))


def run_rows(ws: Workspace, plan: Plan, done: list[dict[str, Any]], partial: Path | None,
             header: dict[str, Any], batch_size: int, pool: BackendPool, progress: Progress | None,
             texts: list[str] | None = None, digests: list[str] | None = None) -> float:
    """Predict the rows not in ``done`` in batches, appending each finished batch to ``done`` (and
    ``partial``); returns the seconds spent opening the model (0 when ``pool`` had it open)."""
    from gitops.ml import tokens

    texts = texts if texts is not None else plan.texts
    digests = digests if digests is not None else [output.row_digest(k, t) for k, t in zip(plan.keys, texts)]
    prompter = open_prompter(ws, plan.task, plan.config)  # the renderer and retriever gitops serve uses too
    max_new = prompter.max_new_tokens
    order = length_order(plan, {r["row"] for r in done})
    t0 = time.perf_counter()
    backend = pool.get(ws, plan.model, plan.version)
    load = time.perf_counter() - t0
    sink = output.open_partial(partial, header, fresh=not done) if partial else None
    try:
        if progress is not None:  # the rows a killed run already did: a bar starts there, its rate counts new rows
            progress(len(done), len(plan.rows))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if is_head(plan.version):  # the rendered input alone, through the head's own tokenizer
                prompts = prompter.render_many([plan.rows[i] for i in index])
                made = _headed(index, [backend.encode(p) for p in prompts], backend)
            else:
                prompts, examples = prompter.model_prompts_with_examples([plan.rows[i] for i in index],
                                                                         backend.tokenizer)
                ids = [tokens.prompt_ids(backend.tokenizer, p, chat=prompter.chat) for p in prompts]
                made = (_constrained(plan, index, prompts, ids, backend, prompter, examples) if plan.constrained
                        else _generated(plan, index, prompts, ids, backend, max_new, prompter.chat))
            for m in made:
                m.update(_row_fields(plan, m["row"], texts[m["row"]]), digest=digests[m["row"]])
            if sink is not None:
                output.append(sink, made)
            done.extend(made)
            if progress is not None:
                progress(len(done), len(plan.rows))
    finally:
        if sink is not None:
            sink.close()
    return load


def _generated(plan: Plan, index: list[int], prompts: list[str], ids: list[list[int]], backend: Any, max_new: int,
               chat: bool) -> list[dict[str, Any]]:
    from gitops.ml import choices

    t0 = time.perf_counter()
    gens = backend.generate_encoded(ids, max_new_tokens=max_new)
    scores = choices.score_labels(backend, prompts, plan.task.labels, chat=chat) if plan.probabilities else None
    share = (time.perf_counter() - t0) / len(index)
    return [_prediction(i, *plan.task.predict(g.text), g.text, len(x), g.new_tokens, share,
                        _probabilities(plan, scores[n]) if scores else None)
            for n, (i, x, g) in enumerate(zip(index, ids, gens, strict=True))]


def _constrained(plan: Plan, index: list[int], prompts: list[str], ids: list[list[int]], backend: Any,
                 prompter: Any, examples: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every label scored as the prompt's continuation (calibrated when the version says so: the
    same :func:`~gitops.predict.calibration.label_answers` gitops serve answers with)."""
    from gitops.predict.calibration import label_answers

    labels = plan.task.labels
    t0 = time.perf_counter()
    answers = label_answers(backend, plan.task, prompts, examples, chat=prompter.chat, calibrator=prompter.calibrator)
    share = (time.perf_counter() - t0) / len(index)
    return [_prediction(i, labels[j], True, labels[j], len(x), n, share, dict(zip(labels, probs, strict=True)))
            for i, x, (j, probs, n) in zip(index, ids, answers, strict=True)]


def _probabilities(plan: Plan, scores: list[tuple[float, int]]) -> dict[str, float]:
    from gitops.ml import choices

    return dict(zip(plan.task.labels, choices.probabilities(scores), strict=True))


def _headed(index: list[int], ids: list[list[int]], classifier: Any) -> list[dict[str, Any]]:
    """A head version: one forward pass of the base for the batch, the likeliest label, every label's probability."""
    t0 = time.perf_counter()
    answers = head_predictions(classifier, ids)
    share = (time.perf_counter() - t0) / len(index)
    return [_prediction(i, label, True, label, len(x), 0, share, probabilities)
            for i, x, (label, probabilities) in zip(index, ids, answers, strict=True)]


def _prediction(i: int, predicted: str, matched: bool, raw: str, prompt_tokens: int, completion_tokens: int,
                seconds: float, probabilities: dict[str, float] | None) -> dict[str, Any]:
    # latency: a batch's time shared by its rows, what one prediction costs when rows are batched
    return {"row": i, "prediction": predicted, "matched": matched, "raw_output": raw, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "latency_ms": seconds * 1000, "probabilities": probabilities}


def _row_fields(plan: Plan, i: int, text: str) -> dict[str, Any]:
    """What a prediction says of its row: the key, the input as the task renders it, the true label
    (None for an unlabeled row)."""
    label = plan.rows[i].get(plan.task.label)
    return {"key": plan.keys[i], "input": text, "label": None if is_unlabeled(label) else str(label)}


def _header(plan: Plan, digests: list[str]) -> dict[str, Any]:
    """The partial file's first line: what run it belongs to (and, by the digest, over which rows)."""
    header = {"gitops_predict": output.PARTIAL_VERSION, "ref": plan.ref, "md5": plan.version.md5,
              "dataset": plan.dataset, "split": plan.split, "rows": len(plan.rows),
              "rows_digest": output.rows_digest(digests), "probabilities": plan.probabilities or plan.constrained}
    if plan.constrained:
        header["constrain"] = "labels"
    return header


def write_predictions(out: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` to ``out`` (Parquet, CSV or JSON Lines by extension), :data:`COLUMNS` of each, atomically."""
    output.write_predictions(out, rows, COLUMNS)
