"""``gitops predict``: a classification variant over a data set version, one prediction per row.

Any version of a ``task: classification`` model runs the same way: its rows are rendered by the
model's task template, a prompt version adds its template and retrieved examples
(:mod:`gitops.predict.renderer`, :mod:`gitops.predict.retrieval`) and runs on its pinned base, a
fine-tuned version runs on its own weights. Each raw output goes through the task's extraction
rules; with decoding constrained to the labels (``generation.constrain: labels`` or
``--constrain labels``) every label is scored as the prompt's continuation instead and the
likeliest is the prediction (:mod:`gitops.ml.choices`).

Rows are predicted in batches of similar length (sorted by their rendered input, so a batch pads
little; the output keeps the data set's order); every finished batch is appended (and fsynced) to
``OUT.partial.jsonl``, each prediction with its row number, so a killed run resumes where it
stopped; the output (Parquet, CSV or JSON Lines, by extension) is written atomically at the end
and the partial file removed. A backend is opened once per run (once per base in ``compare``).

Everything that can be refused is refused before the model loads: a model without a
classification task, an output extension we cannot write, a template naming a column the data set
lacks, labels in the data outside the vocabulary, a partial file from another run.
"""

from __future__ import annotations

import json
import os
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
from gitops.predict import scoring
from gitops.predict.head_variant import is_head
from gitops.predict.head_variant import predictions as head_predictions
from gitops.predict.pool import BackendPool
from gitops.predict.prompter import open_prompter

OUT_FORMATS = (".parquet", ".csv", ".jsonl")
SPLITS_ALL = "all"
DEFAULT_BATCH = 32
CONSTRAIN = ("labels", "none")
MAX_BATCH = 256
MAX_ROWS = 1_000_000
COLUMNS = ("key", "label", "prediction", "matched", "raw_output", "prompt_tokens", "completion_tokens",
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
    dataset: str
    split: str
    rows: list[dict[str, Any]]
    keys: list[str]
    config: dict[str, Any] | None
    constrained: bool = False


def plan_predict(ws: Workspace, ref: str, dataset: str, split: str = "test", *, limit: int | None = None,
                 constrain: str | None = None) -> Plan:
    """Resolve ``ref``, read and check the rows of ``dataset`` (``split``, or ``all``). ``constrain``
    (labels or none) overrides what the variant's config says."""
    if constrain is not None and constrain not in CONSTRAIN:
        raise ConfigError(f"--constrain must be one of {', '.join(CONSTRAIN)}, not '{constrain}'")
    model, version = ws.registry().resolve(refs.parse_ref(ref, require_ref=True))
    task = model.classification
    if task is None:
        raise ConfigError(f"model '{model.name}' has task '{model.task}'; gitops predict needs 'task: "
                          "classification' with a classification block (docs/tasks.md)")
    ds, ds_version = batches.resolve(ws, dataset)
    label = f"{ds.name}@{ds_version.id}"
    if why := check_columns(task, ds.columns, label):
        raise ConfigError(why)
    rows = batches.read_rows(ws, label, None if split == SPLITS_ALL else split)
    if limit is not None:
        rows = rows[:limit]
    if len(rows) > MAX_ROWS:
        raise ConfigError(f"{label} has {len(rows)} rows in split '{split}'; predict at most {MAX_ROWS} at once "
                          "(use --limit)")
    if not rows:
        raise ConfigError(f"{label} has no rows in split '{split}'")
    if why := check_labels(task, [r[task.label] for r in rows if r.get(task.label) is not None], label):
        raise ConfigError(why)
    config = version.config if version.format == "prompt" else None
    if constrain is None:
        constrain = ((config or {}).get("generation") or {}).get("constrain", "none")
    return Plan(f"{model.name}@{version.id}", model, version, task, label, split, rows,
                [_row_key(r, ds.key) for r in rows], config,
                constrained=constrain == "labels" and not is_head(version))  # a head is never generated


def _row_key(row: dict[str, Any], key: list[str]) -> str:
    return "|".join(str(row[k]) for k in key)


def predict(ws: Workspace, ref: str, dataset: str, *, split: str = "test", out: Path | None = None,
            batch_size: int = DEFAULT_BATCH, limit: int | None = None, device: str = "cpu",
            threads: int | None = None, progress: Progress | None = None, constrain: str | None = None,
            pool: BackendPool | None = None, plan: Plan | None = None) -> PredictResult:
    """Predict every row of ``dataset``'s ``split`` with ``ref``; write ``out`` when given (resumable).
    ``pool``: backends shared with other runs of the caller (it closes them); else one is opened here.
    ``plan``: what :func:`plan_predict` returned for these arguments, when the caller has it already."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be from 1 to {MAX_BATCH}")
    if out is not None and Path(out).suffix.lower() not in OUT_FORMATS:
        raise ConfigError(f"--out {out}: write .parquet, .csv or .jsonl")
    plan = plan or plan_predict(ws, ref, dataset, split, limit=limit, constrain=constrain)
    partial = _partial_path(out) if out is not None else None
    header = _header(plan)
    done = _resume(partial, header) if partial else []
    resumed = len(done)
    t0, load = time.perf_counter(), 0.0
    if resumed < len(plan.rows):
        own = pool is None
        pool = pool or BackendPool(device, threads)
        try:
            load = run_rows(ws, plan, done, partial, header, batch_size, pool, progress)
        finally:
            if own:
                pool.close()
    seconds = time.perf_counter() - t0
    done.sort(key=lambda r: r["row"])
    if out is not None:
        write_predictions(Path(out), done)
        if partial is not None:
            partial.unlink(missing_ok=True)
    return PredictResult(plan.ref, plan.dataset, split, Path(out) if out else None, len(done), resumed, seconds,
                         scoring.score(done, plan.task.labels), done, plan.constrained, load)


def length_order(plan: Plan, skip: set[int]) -> list[int]:
    """Row numbers not in ``skip``, shortest rendered input first (ties in data set order): batches
    of similar length pad little. The same rows give the same order, so a resumed run batches the
    remaining rows as the killed one would have."""
    return sorted((i for i in range(len(plan.rows)) if i not in skip),
                  key=lambda i: (len(plan.task.render(plan.rows[i])), i))


def run_rows(ws: Workspace, plan: Plan, done: list[dict[str, Any]], partial: Path | None,
             header: dict[str, Any], batch_size: int, pool: BackendPool, progress: Progress | None) -> float:
    """Predict the rows not in ``done`` in batches, appending each finished batch to ``done`` (and
    ``partial``); returns the seconds spent opening the model (0 when ``pool`` had it open)."""
    prompter = open_prompter(ws, plan.task, plan.config)  # the renderer and retriever gitops serve uses too
    max_new = prompter.max_new_tokens
    order = length_order(plan, {r["row"] for r in done})
    t0 = time.perf_counter()
    backend = pool.get(ws, plan.model, plan.version)
    load = time.perf_counter() - t0
    sink = _open_partial(partial, header, fresh=not done) if partial else None
    try:
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            rows = [plan.rows[i] for i in index]
            prompts = prompter.render_many(rows)
            ids = [backend.encode(p) for p in prompts]
            made = (_headed(plan, index, ids, backend) if is_head(plan.version)
                    else _constrained(plan, index, prompts, ids, backend) if plan.constrained
                    else _generated(plan, index, ids, backend, max_new))
            if sink is not None:
                sink.write("".join(json.dumps(m) + "\n" for m in made))
                sink.flush()
                os.fsync(sink.fileno())
            done.extend(made)
            if progress is not None:
                progress(len(done), len(plan.rows))
    finally:
        if sink is not None:
            sink.close()
    return load


def _generated(plan: Plan, index: list[int], ids: list[list[int]], backend: Any, max_new: int) -> list[dict[str, Any]]:
    gens = backend.generate_encoded(ids, max_new_tokens=max_new)
    return [_prediction(plan, i, *plan.task.predict(g.text), g.text, len(x), g.new_tokens, g.seconds / len(index))
            for i, x, g in zip(index, ids, gens, strict=True)]


def _constrained(plan: Plan, index: list[int], prompts: list[str], ids: list[list[int]],
                 backend: Any) -> list[dict[str, Any]]:
    from gitops.ml import choices

    labels = plan.task.labels
    t0 = time.perf_counter()
    scores = choices.score_labels(backend, prompts, labels)
    share = (time.perf_counter() - t0) / len(index)
    made = []
    for i, x, row in zip(index, ids, scores, strict=True):
        j = choices.best(row)
        made.append(_prediction(plan, i, labels[j], True, labels[j], len(x), row[j][1], share))
    return made


def _headed(plan: Plan, index: list[int], ids: list[list[int]], classifier: Any) -> list[dict[str, Any]]:
    """A head version: one forward pass of the base for the batch, the likeliest label, every label's probability."""
    t0 = time.perf_counter()
    answers = head_predictions(classifier, ids)
    share = (time.perf_counter() - t0) / len(index)
    return [{**_prediction(plan, i, label, True, label, len(x), 0, share), "probabilities": probabilities}
            for i, x, (label, probabilities) in zip(index, ids, answers, strict=True)]


def _prediction(plan: Plan, i: int, predicted: str, matched: bool, raw: str, prompt_tokens: int,
                completion_tokens: int, seconds: float) -> dict[str, Any]:
    label = plan.rows[i].get(plan.task.label)
    # latency: a batch's time shared by its rows, what one prediction costs when rows are batched
    return {"row": i, "key": plan.keys[i], "label": None if label is None else str(label), "prediction": predicted,
            "matched": matched, "raw_output": raw, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "latency_ms": seconds * 1000}




# --- the partial file and the output -------------------------------------------------------------

def _partial_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".partial.jsonl")


def _header(plan: Plan) -> dict[str, Any]:
    # 2: each prediction carries its row number (rows run in length order, not in data set order)
    header = {"gitops_predict": 2, "ref": plan.ref, "md5": plan.version.md5, "dataset": plan.dataset,
              "split": plan.split, "rows": len(plan.rows)}
    if plan.constrained:
        header["constrain"] = "labels"
    return header


def _resume(partial: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    """The predictions a killed run left in ``partial`` (a torn last line is dropped), or []."""
    if not partial.exists():
        return []
    lines = partial.read_text(encoding="utf-8").split("\n")
    try:
        found = json.loads(lines[0])
    except json.JSONDecodeError:
        found = None
    if found != header:
        raise ConfigError(f"{partial} is left from a prediction of another variant, data set, split or "
                          "decoding (or an older gitops); remove it or choose another --out")
    rows = []
    for line in lines[1:]:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the line a kill cut short, and anything after it, is predicted again
    keep = "\n".join(lines[:1 + len(rows)]) + "\n"
    with partial.open("r+b") as fh:
        fh.truncate(len(keep.encode("utf-8")))
    return rows


def _open_partial(partial: Path, header: dict[str, Any], *, fresh: bool):
    partial.parent.mkdir(parents=True, exist_ok=True)
    sink = partial.open("w" if fresh else "a", encoding="utf-8")
    if fresh:
        sink.write(json.dumps(header) + "\n")
    return sink


def write_predictions(out: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` to ``out`` (Parquet, CSV or JSON Lines by extension), atomically."""
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([_flat(r) for r in rows]), tmp)
    elif suffix == ".csv":
        import csv

        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(_flat(r) for r in rows)
    else:
        tmp.write_text("".join(json.dumps({c: r.get(c) for c in COLUMNS}) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, out)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A prediction for a table (CSV, Parquet): ``probabilities`` as JSON text (empty: none)."""
    out = {c: row.get(c) for c in COLUMNS}
    out["probabilities"] = json.dumps(out["probabilities"]) if out["probabilities"] is not None else None
    return out
