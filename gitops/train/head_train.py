"""``gitops train`` with ``adapter: {type: head}``: a classification head on a frozen, pinned base.

Seed 004: "start with not training the weights of the LLM"; "get rid of the large language model
output and add a classification head on top". The model's task input template renders each row
of the train and valid splits (no instruction, no examples), the base runs once per row (the
vectors are cached machine-locally and grow per ingested batch: :mod:`gitops.ml.embcache`), and a
linear or small MLP head learns the labels from the pooled hidden state (:mod:`gitops.ml.classhead`).
The version (format ``head``) stores the head alone, kilobytes, in DVC like every version, pinned
to its base by ``base_model`` (a version id) and ``base_md5``.

Everything that can be refused is refused before the base loads: a model without a
classification task, a base that is not a registry version (nothing to pin), a base without hidden
states (ct2, a prompt or another head), a data set without the template's columns, labels outside
the vocabulary, too few labelled rows in train or valid.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from gitops import yamlio
from gitops.core import layout, refs
from gitops.core.materialize import loadable
from gitops.core.schema import Model, Version
from gitops.core.task import ClassificationTask, check_columns, check_labels
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError, NotFoundError
from gitops.ml import classhead as headmod
from gitops.ml import embcache, gguf_base
from gitops.ml.embed import Pooling
from gitops.predict.head_variant import BASE_FORMATS
from gitops.registry.alias import set_alias
from gitops.registry.register import register
from gitops.train.register_base import ensure_base
from gitops.train.train_config import TrainConfig
from gitops.train.workdir import work_dir

TEMPLATE_DIR = Path(__file__).parent / "templates"
Progress = Callable[[int, int, dict[str, Any]], None]


@dataclass
class HeadRun:
    """The outcome of training a head: the registered version, what was embedded and how the head did."""

    model: str
    version: str
    dataset: str
    base_model: str
    base_md5: str
    config: dict[str, Any]
    config_hash: str
    metrics: dict[str, float]
    path: str
    commit: str | None = None
    created: bool = True
    alias: str | None = None
    format: str = "head"
    embedded: int = 0  # rows run through the base this time (the rest came from the cache)
    cached: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list, repr=False)
    proposal: Any = None  # with --pr: the gitops.github.proposal.Proposed pull request


def train_head(ws: Workspace, cfg: TrainConfig, *, alias: str | None = None, push: bool = False,
               threads: int | None = None, progress: Progress | None = None) -> HeadRun:
    """Embed, fit, register: see the module doc. ``threads``: torch's CPU threads (default: half the
    CPUs, 1 to 4, as ``gitops eval``)."""
    from gitops.eval.evaluate import default_threads

    t0 = time.perf_counter()
    model, task = classification_model(ws, cfg.output_model)
    dataset, dversion = batches.resolve(ws, cfg.dataset)
    label = f"{dataset.name}@{dversion.id}"
    train_rows, valid_rows = labelled_rows(ws, dataset, dversion, task, label)
    base_name, base = base_version(ws, cfg)
    loaded = loadable(ws, base_name, base)  # verified (a pinned LoRA base: merged, from the cache)
    cfg.dataset, cfg.base_model, cfg.gguf_file = label, f"{base_name}@{base.id}", None
    cfg.template, cfg.response, cfg.chat = task.input, None, False  # what the head reads; recorded
    pooling = Pooling(cfg.head.pooling, cfg.head.layer, cfg.head.max_length)
    rows = train_rows + valid_rows
    vectors = embed_rows(loaded, pooling, task, f"{dataset.name}-{dversion.md5.removesuffix('.dir')}",
                     [task.render(r) for r in rows], cfg, threads or default_threads(), progress)
    fitted = fit_head(cfg, task, rows, len(train_rows), vectors.vectors)
    spec = headmod.HeadSpec(labels=list(task.labels), type=cfg.head.type,
                            hidden=cfg.head.hidden if cfg.head.type == "mlp" else None,
                            dim=int(vectors.vectors.shape[1]), pooling=pooling, template=task.input,
                            template_md5=embcache.template_md5(task.input), base_model=cfg.base_model,
                            base_md5=base.md5)
    metrics = {"train_loss": round(fitted.train_loss, 6), "eval_loss": round(fitted.eval_loss, 6),
               "eval_accuracy": round(fitted.eval_accuracy, 6), "epochs": fitted.epochs,
               "best_epoch": fitted.best_epoch, "train_rows": len(train_rows), "valid_rows": len(valid_rows),
               "embedded_rows": vectors.embedded, "cached_rows": vectors.reused,
               "embed_s": round(vectors.seconds, 3), "fit_s": round(fitted.seconds, 3),
               "fit_cpu_s": round(fitted.cpu_seconds, 3),
               "wall_time_s": round(time.perf_counter() - t0, 3)}
    run = HeadRun(model=model.name, version="", dataset=cfg.dataset, base_model=cfg.base_model, base_md5=base.md5,
                  config=cfg.to_dict(), config_hash=cfg.config_hash(), metrics=metrics, path="",
                  embedded=vectors.embedded, cached=vectors.reused, curve=fitted.curve)
    return register_head(ws, cfg, run, fitted.head, spec, alias=alias, push=push)


def fit_head(cfg: TrainConfig, task: ClassificationTask, rows: list[dict], n_train: int, vectors: Any) -> Any:
    """The head fitted on the first ``n_train`` rows' vectors, stopped early on the rest (valid)."""
    index = {name: i for i, name in enumerate(task.labels)}
    y = [index[str(r[task.label])] for r in rows]
    settings = headmod.FitSettings(**{k: getattr(cfg.head, k) for k in (
        "type", "hidden", "epochs", "patience", "learning_rate", "weight_decay", "batch_size", "dropout",
        "class_weights")}, seed=cfg.trainer.seed)
    return headmod.fit(vectors[:n_train], y[:n_train], vectors[n_train:], y[n_train:], len(task.labels), settings)


def classification_model(ws: Workspace, name: str) -> tuple[Model, ClassificationTask]:
    model = ws.registry().models.get(name)
    if model is None or model.classification is None:
        what = "does not exist" if model is None else f"has task '{model.task}'"
        raise ConfigError(f"adapter.type head trains a classification head, but output.model '{name}' {what}; "
                          f"create it with 'gitops model create {name} --task classification --classification "
                          "task.yaml'")
    return model, model.classification


def labelled_rows(ws: Workspace, dataset: Any, version: Any, task: ClassificationTask,
                  label: str) -> tuple[list[dict], list[dict]]:
    """The labelled rows of the train and valid splits, checked (columns, labels, enough of them)."""
    if why := check_columns(task, dataset.columns, label):
        raise ConfigError(why)
    train, valid = (_labelled(ws, dataset, version, split, task) for split in ("train", "valid"))
    _check_rows(task, train, valid, label)
    return train, valid


def _labelled(ws: Workspace, dataset: Any, version: Any, split: str, task: ClassificationTask) -> list[dict]:
    """The rows of ``split`` that carry a label (an unlabelled row teaches a head nothing)."""
    rows = batches.rows_of(ws, dataset, version, split)
    return [r for r in rows if r.get(task.label) is not None and str(r[task.label]).strip() != ""]


def _check_rows(task: ClassificationTask, train: list[dict], valid: list[dict], label: str) -> None:
    if why := check_labels(task, [r[task.label] for r in train + valid], label):
        raise ConfigError(why)
    if len({str(r[task.label]) for r in train}) < 2:
        raise ConfigError(f"{label}'s train split has {len(train)} labelled rows of "
                          f"{len({str(r[task.label]) for r in train})} label(s); a head needs at least two labels "
                          "to tell apart")
    if not valid:
        raise ConfigError(f"{label}'s valid split has no labelled rows; a head stops early on the valid split's "
                          "loss, so it needs some (ingest more rows, or give the data set a valid share)")


def base_version(ws: Workspace, cfg: TrainConfig) -> tuple[str, Version]:
    """The registry version the head is pinned to (a GGUF is registered as a base version first)."""
    ref = cfg.base_model
    if gguf_base.is_gguf(ref, cfg.gguf_file):
        ref = ensure_base(ws, ref, gguf_file=cfg.gguf_file).ref
    parsed = refs.maybe_ref(ref, require_ref=True)
    registry = ws.registry()
    if parsed is None or parsed.name not in registry.models:
        raise ConfigError(f"base_model '{ref}': a head is pinned to its base by md5, so the base must be a registry "
                          "version (NAME@vN): register it first with 'gitops register-base DIR' (or a .gguf, or "
                          "smollm2)")
    try:
        model, version = registry.resolve(parsed)
    except NotFoundError as exc:
        raise ConfigError(f"base_model: {exc}") from None
    if version.format not in BASE_FORMATS or (version.format == "peft-lora" and not version.base_md5):
        raise ConfigError(f"base_model {model.name}@{version.id} has format '{version.format}', which has no hidden "
                          "states gitops can read; a head's base is an hf or a gitops-trained peft-lora version")
    return model.name, version


def embed_rows(loaded: Any, pooling: Pooling, task: ClassificationTask, dataset: str, texts: list[str],
           cfg: TrainConfig, threads: int, progress: Progress | None) -> embcache.Embeddings:
    """The vectors of ``texts``, from the cache where it has them; the base opens only for the rest
    (with the key checked against its depth first, so a bad layer fails before any row runs)."""
    from gitops.ml.backends import open_backend
    from gitops.ml.embed import Embedder

    key = embcache.EmbedKey(loaded.key.removesuffix(".dir"), embcache.template_md5(task.input), pooling.pooling,
                            pooling.layer, pooling.max_length)
    opened: dict[str, Any] = {}

    def embed(missing: list[str]) -> Any:
        t0 = time.perf_counter()
        backend = opened["backend"] = open_backend(loaded.weights, "hf", threads=threads)
        hf = cast(Any, backend)  # an hf backend: its model and tokenizer
        embedder = Embedder(hf.model, hf.tokenizer, pooling, cfg.base_model)
        opened["load_s"] = time.perf_counter() - t0
        report = (lambda done, total: progress(done, total, {"stage": "embed"})) if progress else None
        return embedder.embed(missing, cfg.head.embed_batch_size, report)

    try:
        got = embcache.embeddings(key, dataset, texts, embed)
        got.seconds -= opened.get("load_s", 0.0)  # what embedding took, the base's loading apart
        return got
    finally:
        if "backend" in opened:
            opened["backend"].close()


def register_head(ws: Workspace, cfg: TrainConfig, run: HeadRun, head: Any, spec: Any, *, alias: str | None,
                  push: bool, extra: Callable[[Path], None] | None = None) -> HeadRun:
    """Write the version's files (the head; ``extra`` adds more, a LoRA adapter) and register them."""
    out = work_dir(ws.root, cfg)
    release = out / "release"
    shutil.rmtree(release, ignore_errors=True)
    release.mkdir(parents=True)
    headmod.save(head, spec, release)
    if extra is not None:
        extra(release)
    (release / "metrics.json").write_text(json.dumps(run.metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (release / "loss_curve.json").write_text(json.dumps(run.curve) + "\n", encoding="utf-8")
    yamlio.dump_file(release / "train_config.yaml", run.config)
    with ws.writing("train"):  # the version id the card names is the one register will take
        registry = ws.registry()
        expected = registry.models[run.model].next_version_id()
        _card(release, run, spec, expected)
        result = register(ws, run.model, release, fmt="head", base_model=run.base_model, base_md5=run.base_md5,
                          dataset=run.dataset, metrics=run.metrics, config=run.config, config_hash=run.config_hash,
                          note=f"gitops train ({'LoRA + ' if spec.adapter else ''}head: {spec.type}, "
                               f"{spec.pooling.pooling} of layer {spec.pooling.layer})",
                          move=True)
    version = result.version
    run.version, run.path, run.commit, run.created = version.id, version.path, version.commit, result.created
    if alias:
        set_alias(ws, run.model, alias, version.id, note=f"head trained on {run.dataset}")
        run.alias = alias
    if push:
        ws.push([layout.pointer(version)], f"{run.model} {version.id} was registered")
    shutil.rmtree(out, ignore_errors=True)
    return run


def _card(release: Path, run: HeadRun, spec: Any, version: str) -> None:
    """The version's README.md: what it is, how it was trained, how to load it by hand."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), keep_trailing_newline=True,
                             autoescape=False, undefined=jinja2.StrictUndefined)  # no autoescape: Markdown
    front = {"base_model": run.base_model, "datasets": [run.dataset], "library_name": "gitops",
             "pipeline_tag": "text-classification", "tags": ["gitops", "classification-head"]}
    text = env.get_template("head_card.md.j2").render(run=run, spec=spec, version=version,
                                                      front_matter=yamlio.dumps(front),
                                                      config_yaml=yamlio.dumps(run.config))
    yamlio.write_atomic(release / "README.md", text)
