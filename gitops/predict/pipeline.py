"""``gitops predict``: a classification variant over a data set version, one prediction per row.

Any version of a ``task: classification`` model runs the same way: its rows are rendered by the
model's task template, a prompt version adds its template and retrieved examples
(:mod:`gitops.predict.renderer`, :mod:`gitops.predict.retrieval`) and runs on its pinned base, a
fine-tuned version runs on its own weights. Each raw output goes through the task's extraction
rules. Rows are generated in batches; every finished batch is appended (and fsynced) to
``OUT.partial.jsonl`` so a killed run resumes where it stopped; the output (Parquet, CSV or JSON
Lines, by extension) is written atomically at the end and the partial file removed.

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
from gitops.core.materialize import loadable
from gitops.core.schema import Model, Version
from gitops.core.task import ClassificationTask, check_columns, check_labels
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError
from gitops.predict import scoring
from gitops.predict.prompter import open_prompter, pinned_base

OUT_FORMATS = (".parquet", ".csv", ".jsonl")
SPLITS_ALL = "all"
DEFAULT_BATCH = 16
MAX_BATCH = 256
MAX_ROWS = 1_000_000
COLUMNS = ("key", "label", "prediction", "matched", "raw_output", "prompt_tokens", "completion_tokens",
           "latency_ms")
Progress = Callable[[int, int], None]


@dataclass
class PredictResult:
    """What a prediction run did: ``rows`` predicted in total, ``resumed`` of them from a partial run."""

    ref: str
    dataset: str
    split: str
    out: Path | None
    rows: int
    resumed: int
    seconds: float
    scores: scoring.Scores
    predictions: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def rows_per_second(self) -> float:
        done = self.rows - self.resumed
        return done / self.seconds if self.seconds > 0 else 0.0


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


def plan_predict(ws: Workspace, ref: str, dataset: str, split: str = "test", *, limit: int | None = None) -> Plan:
    """Resolve ``ref``, read and check the rows of ``dataset`` (``split``, or ``all``)."""
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
    return Plan(f"{model.name}@{version.id}", model, version, task, label, split, rows,
                [_row_key(r, ds.key) for r in rows], version.config if version.format == "prompt" else None)


def _row_key(row: dict[str, Any], key: list[str]) -> str:
    return "|".join(str(row[k]) for k in key)


def predict(ws: Workspace, ref: str, dataset: str, *, split: str = "test", out: Path | None = None,
            batch_size: int = DEFAULT_BATCH, limit: int | None = None, device: str = "cpu",
            threads: int | None = None, progress: Progress | None = None) -> PredictResult:
    """Predict every row of ``dataset``'s ``split`` with ``ref``; write ``out`` when given (resumable)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be from 1 to {MAX_BATCH}")
    if out is not None and Path(out).suffix.lower() not in OUT_FORMATS:
        raise ConfigError(f"--out {out}: write .parquet, .csv or .jsonl")
    plan = plan_predict(ws, ref, dataset, split, limit=limit)
    partial = _partial_path(out) if out is not None else None
    header = _header(plan)
    done = _resume(partial, header) if partial else []
    t0 = time.perf_counter()
    todo = len(plan.rows) - len(done)
    if todo:
        run_rows(ws, plan, done, partial, header, batch_size, device, threads, progress)
    seconds = time.perf_counter() - t0
    if out is not None:
        write_predictions(Path(out), done)
        if partial is not None:
            partial.unlink(missing_ok=True)
    return PredictResult(plan.ref, plan.dataset, split, Path(out) if out else None, len(done),
                         len(plan.rows) - todo, seconds, scoring.score(done, plan.task.labels), done)


def run_rows(ws: Workspace, plan: Plan, done: list[dict[str, Any]], partial: Path | None,
             header: dict[str, Any], batch_size: int, device: str, threads: int | None,
             progress: Progress | None) -> None:
    """Generate the rows after ``done`` in batches, appending each finished batch to ``done`` (and ``partial``)."""
    prompter = open_prompter(ws, plan.task, plan.config)  # the renderer and retriever gitops serve uses too
    max_new = prompter.max_new_tokens
    with open_variant(ws, plan.model, plan.version, device, threads) as backend:
        sink = _open_partial(partial, header, fresh=not done) if partial else None
        try:
            for start in range(len(done), len(plan.rows), batch_size):
                rows = plan.rows[start:start + batch_size]
                prompts = prompter.render_many(rows)
                gens = backend.generate(prompts, max_new_tokens=max_new, batch_size=len(prompts))
                made = [_prediction(plan, start + i, p, g, backend, len(rows))
                        for i, (p, g) in enumerate(zip(prompts, gens, strict=True))]
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


def _prediction(plan: Plan, i: int, prompt: str, gen: Any, backend: Any, batch: int) -> dict[str, Any]:
    predicted, matched = plan.task.predict(gen.text)
    label = plan.rows[i].get(plan.task.label)
    # a batch's time shared by its rows: what one prediction costs when rows are batched
    return {"key": plan.keys[i], "label": None if label is None else str(label), "prediction": predicted,
            "matched": matched, "raw_output": gen.text, "prompt_tokens": len(backend.encode(prompt)),
            "completion_tokens": gen.new_tokens, "latency_ms": gen.seconds * 1000 / batch}


def open_variant(ws: Workspace, model: Model, version: Version, device: str, threads: int | None):
    """A backend for ``version``: its own weights, or for a prompt version its pinned base (md5-checked)."""
    from gitops.ml.backends import open_backend
    from gitops.ml.bases import base_model_dir

    name, target = model.name, version
    if version.format == "prompt":
        base_model, target = pinned_base(ws.registry(), model, version)
        name = base_model.name
    if target.format not in ("hf", "peft-lora", "ct2"):
        raise ConfigError(f"{name}@{target.id} has format '{target.format}', which gitops predict cannot run")
    loaded = loadable(ws, name, target)
    base_dir = base_model_dir(ws, target.base_model) if loaded.format == "peft-lora" else None
    return open_backend(loaded.weights, loaded.format, base_dir=base_dir, device=device, threads=threads)


# --- the partial file and the output -------------------------------------------------------------

def _partial_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".partial.jsonl")


def _header(plan: Plan) -> dict[str, Any]:
    return {"gitops_predict": 1, "ref": plan.ref, "md5": plan.version.md5, "dataset": plan.dataset,
            "split": plan.split, "rows": len(plan.rows)}


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
        raise ConfigError(f"{partial} is left from a prediction of another variant, data set or split; "
                          "remove it or choose another --out")
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

        pq.write_table(pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows]), tmp)
    elif suffix == ".csv":
        import csv

        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    else:
        tmp.write_text("".join(json.dumps({c: r[c] for c in COLUMNS}) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, out)
