"""``gitops train``: config -> data set version -> base model -> LoRA training -> registered version.

The training itself is :func:`gitops.train.lora.train_model`; this module is the repository wiring:
resolve the references, read the data, keep a resumable work dir, write the model card, register
the new version with its lineage. Under ``accelerate launch`` every process runs this; only the main
process writes files, registers and commits.

What is registered depends on the base. A base that is a registry version (``hf``, a GGUF or a
directory registered as a base version, or another ``peft-lora`` version) gives a ``peft-lora``
version: the adapter alone (megabytes), pinned to that base version by ``base_model`` and
``base_md5``; the merged weights are made on demand where versions are loaded
(:func:`gitops.core.materialize.loadable`). A base that is not a registry version (the embedded toy,
a local directory, a hub id) has no md5 to pin, so that version stores the merged model (format
``hf``) as before, with the adapter in ``adapter/``. See docs/train-config.md.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.core import layout, refs
from gitops.core.materialize import is_pinned, loadable, version_files
from gitops.core.schema import Dataset, DatasetVersion
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError, GitopsError, NotFoundError, RepoStateError, TrainError, shown
from gitops.github import proposal
from gitops.ml import gguf_base
from gitops.ml.bases import EMBEDDED_BASE, base_model_dir
from gitops.ml.textformat import Pair, PromptFormat
from gitops.registry.alias import set_alias
from gitops.registry.register import register
from gitops.train import card as cardmod
from gitops.train import train_config
from gitops.train.head_train import HeadRun, train_head
from gitops.train.lora import Progress, TrainResult, train_model
from gitops.train.lora_head import train_lora_head
from gitops.train.register_base import ensure_base
from gitops.train.train_config import TrainConfig
from gitops.train.workdir import RUNS_DIR, work_dir  # noqa: F401 - RUNS_DIR: where callers find runs

RELEASE_FILES = ("metrics.json", "loss_curve.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # what a peft-lora version stores


@dataclass
class BaseSpec:
    """What to load and what to record for ``base_model``."""

    load_from: str  # a directory or hub id for from_pretrained
    adapter: Path | None  # a parent's LoRA adapter to merge in first
    record: str  # what the new version records as base_model
    parent: str | None  # parent version id (same model only)
    md5: str | None = None  # the base version's md5 when it is a registry version: the run stores the adapter


@dataclass
class TrainRun:
    """The outcome of ``gitops train`` (on non-main processes, ``version`` is None)."""

    model: str
    version: str | None
    dataset: str
    base_model: str
    parent: str | None
    config: dict
    config_hash: str
    result: TrainResult
    alias: str | None = None
    path: str | None = None
    commit: str | None = None
    base_md5: str | None = None  # set: the run is stored as a peft-lora adapter on that base version
    format: str = "hf"
    proposal: Any = None  # with --pr: the gitops.github.proposal.Proposed pull request


def resolve_dataset(ws: Workspace, ref: str) -> tuple[Dataset, DatasetVersion]:
    """``reviews@latest`` -> the data set and its concrete version: the version recorded is the one read."""
    try:
        return batches.resolve(ws, ref)
    except (NotFoundError, ConfigError):
        raise
    except GitopsError as exc:  # a malformed reference
        raise ConfigError(f"dataset: {exc}") from None


def resolve_base(ws: Workspace, base_model: str, output_model: str, gguf_file: str | None = None) -> BaseSpec:
    """Turn ``base_model`` into something loadable: a registry ref is resolved to its weights dir
    (a ``peft-lora`` version to its base + adapter); a GGUF (``smollm2``, a ``.gguf`` file) is
    registered as a base version first (once per file md5) and then used as that registry ref;
    anything else is a local dir or a hub id."""
    if base_model == EMBEDDED_BASE:
        # The embedded default: built locally, recorded by name so any machine can rebuild it.
        return BaseSpec(str(base_model_dir(ws, base_model)), None, base_model, None)
    if gguf_base.is_gguf(base_model, gguf_file):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every process would register it
            raise TrainError(f"base_model '{base_model}' is a GGUF file: register it once before a multi-process "
                             f"run (gitops register-base {base_model}) and train from the NAME@vN it prints")
        base_model = ensure_base(ws, base_model, gguf_file=gguf_file).ref
    name, sep, _ = base_model.partition("@")
    registry = ws.registry()
    if not sep or name not in registry.models:
        local = Path(base_model).expanduser()
        if sep and not local.exists():
            raise NotFoundError(f"base_model '{base_model}': no registry model '{name}' "
                                f"(models: {', '.join(sorted(registry.models)) or 'none yet'})")
        return BaseSpec(str(local) if local.exists() else base_model, None, base_model, None)
    model, version = registry.resolve(base_model)
    parent = version.id if model.name == output_model else None
    record = f"{model.name}@{version.id}"
    if is_pinned(version):  # the parent merged into its base (cached); the new adapter goes on top
        return BaseSpec(str(loadable(ws, model.name, version).weights), None, record, parent, version.md5)
    weights = version_files(ws, model.name, version)  # pulled through DVC, md5 verified
    if version.format == "hf":
        return BaseSpec(str(weights), None, record, parent, version.md5)
    if version.format == "peft-lora":  # an adapter registered by hand, its base named by path or name
        if not version.base_model:
            raise TrainError(f"base_model {record} is a LoRA adapter without a recorded base_model")
        inner = resolve_base(ws, version.base_model, output_model)
        if inner.adapter is not None:
            raise TrainError(f"base_model {record}: adapters on adapters are not supported")
        return BaseSpec(inner.load_from, weights, record, parent)
    raise TrainError(f"base_model {record} has format '{version.format}', which cannot be fine-tuned; "
                     f"use an hf or peft-lora version (its parent, {version.parent or 'none'}, for example)")


def read_split(ws: Workspace, dataset: Dataset, version: DatasetVersion, split: str,
               fmt: PromptFormat) -> list[Pair]:
    """The rows of one split, each formatted by the config's prompt section: (prompt, response)."""
    fmt.check(list(dataset.columns), dataset.name)
    return [fmt.pair(row, dataset.text_field) for row in batches.rows_of(ws, dataset, version, split)]


def effective_config(ws: Workspace, cfg: TrainConfig) -> tuple[TrainConfig, BaseSpec, Dataset, DatasetVersion]:
    """The config as it actually runs: data set and registry base resolved to versions."""
    base = resolve_base(ws, cfg.base_model, cfg.output_model, cfg.gguf_file)
    dataset, version = resolve_dataset(ws, cfg.dataset)
    cfg.dataset = f"{dataset.name}@{version.id}"
    cfg.base_model = base.record
    _classification_format(ws, cfg)
    cfg.gguf_file = None  # a GGUF base is recorded as its registered version
    return cfg, base, dataset, version


def _classification_format(ws: Workspace, cfg: TrainConfig) -> None:
    """A ``task: classification`` model learns its task as every variant is scored: the task's input
    template, then a space and the label, then the end token (``gitops predict`` generates from the
    input, stops at the end token and extracts the label). The loss covers the label and the end
    token alone (the review is context, not something to learn to write), and a row longer than
    ``max_length`` loses the middle of its input, never its label. The config's prompt section is
    replaced by that; the effective config records it."""
    model = ws.registry().models.get(cfg.output_model)
    if model is None or model.classification is None:
        return
    task = model.classification
    cfg.template, cfg.response, cfg.chat, cfg.loss = task.input, " {" + task.label + "}", False, "response"


def check_before_training(ws: Workspace, cfg: TrainConfig, *, alias: str | None = None, push: bool = False) -> None:
    """Everything a run would otherwise refuse only after training, refused before the first step:
    the options, a work tree with uncommitted changes (the version is committed and records the
    commit it was trained from), the output model, the data set version and a registry base's
    version. A config file git does not track is fine: the version records the config whole."""
    if alias is not None and (problem := refs.alias_problem(alias)):
        raise ConfigError(f"--alias: {problem}")
    if dirty := ws.git.dirty_paths():
        listed = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise RepoStateError(f"cannot train: the work tree has uncommitted changes ({listed}); commit or stash them "
                             "first, since the new version is committed and records the commit it was trained from")
    if push:
        ws.check_push()
    registry = ws.registry()
    if cfg.output_model not in registry.models:
        raise NotFoundError(f"output.model: model '{shown(cfg.output_model)}' does not exist (models: "
                            f"{', '.join(sorted(registry.models)) or 'none yet'}); create it first: "
                            f"gitops model create {shown(cfg.output_model)}")
    resolve_dataset(ws, cfg.dataset)
    name, sep, _ = cfg.base_model.partition("@")
    if sep and name in registry.models:
        registry.resolve(cfg.base_model)  # its weights are pulled (and verified) after every check


def train(ws: Workspace, config_path: Path, overrides: list[str] | None = None, *, resume: bool = False,
          alias: str | None = None, push: bool = False, progress: Progress | None = None, pr: bool = False,
          github_repo: str | None = None, base: str | None = None,
          threads: int | None = None) -> TrainRun | HeadRun:
    """Train from a config file and register the result as a new version of ``output.model``
    (``adapter.type: head``: a classification head on the frozen base, :mod:`gitops.train.head_train`).

    ``pr``: register it (and move ``alias``) on a new branch and open a pull request into ``base``
    (default: the branch checked out) instead of committing here (see :mod:`gitops.github.proposal`);
    the repository, token, remote and branch are checked before training starts. ``threads`` caps
    torch's CPU threads (not part of the config: it changes speed, not the result)."""
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")
    cfg = train_config.read(Path(config_path), overrides)
    if push and pr:
        raise ConfigError("--push and --pr exclude each other: --pr pushes a branch and opens a pull request")
    check_before_training(ws, cfg, alias=alias, push=push)
    if cfg.trains_head and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainError("a classification head trains in one process: run 'gitops train' without accelerate launch")
    if not pr:
        return _train(ws, ws.root, cfg, resume=resume, alias=alias, push=push, progress=progress, threads=threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainError("--pr runs in one process: under accelerate launch, train without it, then propose the "
                         "version with 'gitops promote MODEL@vN --to ALIAS --pr'")
    version = ws.registry().model(cfg.output_model).next_version_id()
    plan = proposal.plan(ws, proposal.train_branch(cfg.output_model, version), repo=github_repo, base=base)
    run, proposed = proposal.propose(
        ws, plan, lambda tree: _train(tree, ws.root, cfg, resume=resume, alias=alias, push=False, progress=progress,
                            threads=threads),
        proposal.train_text)
    run.proposal = proposed
    return run


def _train(ws: Workspace, home: Path, cfg: TrainConfig, *, resume: bool, alias: str | None, push: bool,
           progress: Progress | None, threads: int | None = None) -> TrainRun | HeadRun:
    """Resolve, read, train and register in ``ws``; the work directory (checkpoints, for
    ``--resume``) lives in the repository at ``home`` even when ``ws`` is a proposal's worktree."""
    if cfg.is_head:
        return train_head(ws, cfg, alias=alias, push=push, threads=threads, progress=progress)
    if cfg.adapter.head:
        return train_lora_head(ws, cfg, alias=alias, push=push, threads=threads, progress=progress)
    cfg, base, dataset, version = effective_config(ws, cfg)
    train_texts = read_split(ws, dataset, version, "train", cfg.prompt_format)
    valid_texts = read_split(ws, dataset, version, "valid", cfg.prompt_format)
    out = work_dir(home, cfg)
    result = train_model(train_texts, valid_texts, base.load_from, cfg, out, resume=resume, progress=progress,
                         base_adapter=base.adapter, merge=base.md5 is None,  # peft-lora: no merged copy
                         threads=threads)
    run = TrainRun(model=cfg.output_model, version=None, dataset=cfg.dataset, base_model=cfg.base_model,
                   parent=base.parent, config=cfg.to_dict(), config_hash=cfg.config_hash(), result=result,
                   base_md5=base.md5, format="peft-lora" if base.md5 else "hf")
    if not result.is_main_process:
        return run
    return _register(ws, run, alias=alias, push=push)


def release_dir(run: TrainRun, version: str | None, commit: str | None) -> Path:
    """Assemble the version directory: the weights (the adapter alone for ``peft-lora``; else the
    merged model with ``adapter/`` beside it), metrics, curve, effective config and the model card."""
    out = run.result.out_dir
    release = out / "release"
    if release.exists():
        shutil.rmtree(release)
    if run.format == "peft-lora":
        release.mkdir()
        _copy_adapter(run.result.adapter_dir, release, run.base_model)
    else:
        shutil.copytree(run.result.merged_dir, release)
        shutil.copytree(run.result.adapter_dir, release / "adapter")
    for name in RELEASE_FILES:
        shutil.copy2(out / name, release / name)
    yamlio.dump_file(release / "train_config.yaml", run.config)
    cardmod.write(cardmod.ModelCard(
        model_name=run.model, base_model=run.base_model, dataset=run.dataset, config=run.config,
        config_hash=run.config_hash, metrics=run.result.metrics, version=version,
        parent=f"{run.model}@{run.parent}" if run.parent else None, commit=commit,
        library_name="peft" if run.format == "peft-lora" else "transformers", base_md5=run.base_md5), release)
    return release


def _copy_adapter(adapter_dir: Path, release: Path, base_ref: str) -> None:
    """The adapter's two files, nothing else: no tokenizer (training never changes the vocabulary, so
    the base's tokenizer is the version's; the merged directory takes it from the base) and not
    peft's own README (the model card replaces it). The config's ``base_model_name_or_path`` would be
    a machine-local cache path: it names the registry base instead (gitops loads the base itself)."""
    for name in ADAPTER_FILES:
        shutil.copy2(adapter_dir / name, release / name)
    path = release / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_ref
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _register(ws: Workspace, run: TrainRun, *, alias: str | None, push: bool) -> TrainRun:
    with ws.writing("train"):  # the version id the release names is the one register will take
        registry = ws.registry()
        expected = registry.models[run.model].next_version_id() if run.model in registry.models else "v1"
        commit = ws.git.head()
        release = release_dir(run, expected, commit)
        version = register(ws, run.model, release, fmt=run.format, parent=run.parent, base_model=run.base_model,
                           dataset=run.dataset, metrics=run.result.metrics, config=run.config,
                           config_hash=run.config_hash, note=f"gitops train ({run.result.steps} steps)",
                           move=True, base_md5=run.base_md5).version
    run.version, run.commit = version.id, version.commit or commit
    run.path = version.path
    if alias:
        set_alias(ws, run.model, alias, version.id, note=f"trained from {run.dataset}")
        run.alias = alias
    if push:  # after the alias commit, so one push carries both commits
        ws.push([layout.pointer(version)], f"{run.model} {version.id} was registered")
    shutil.rmtree(run.result.out_dir, ignore_errors=True)  # registered: the checkpoints are done with
    return run
