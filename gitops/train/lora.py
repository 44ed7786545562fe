"""LoRA fine-tuning as a pure function: texts + a base model in, adapter + merged model + metrics out.

One plain loop over :class:`accelerate.Accelerator` (not the HF Trainer) so the same code runs on a
CPU, one GPU, or several processes under ``accelerate launch``. Every ``eval_steps`` optimizer steps
it evaluates on the valid texts and writes a checkpoint (``accelerator.save_state``: weights,
optimizer, scheduler, RNG states, plus our step/epoch/curve), so a killed run resumes where it
stopped and ends, for the same seed, with the same steps as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitops.errors import TrainError
from gitops.ml import textformat, tokens
from gitops.ml.textformat import Pair
from gitops.train.modelio import load_base, precision_problem
from gitops.train.train_config import TrainConfig

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"

# progress(step, total_steps, last_log) -- called on the main process only.
Progress = Callable[[int, int, dict[str, Any]], None]


@dataclass
class TrainState:
    """What a checkpoint adds to accelerate's own state: where in the data the run is."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    tokens: int = 0
    train_time_s: float = 0.0
    wall_time_s: float = 0.0
    curve: list[dict[str, float | int | None]] = field(default_factory=list)
    window_loss: float = 0.0
    window_count: int = 0


@dataclass
class TrainResult:
    """Where the outputs are and what the run measured."""

    out_dir: Path
    adapter_dir: Path
    merged_dir: Path
    metrics: dict[str, float | None]
    curve: list[dict[str, float | int | None]]
    steps: int
    resumed_from: int | None
    is_main_process: bool = True
    num_processes: int = 1


def _sampler_cls() -> type:
    import torch

    class EpochSampler(torch.utils.data.Sampler):
        """A seeded permutation per epoch: the order depends only on (seed, epoch), so resume can skip."""

        def __init__(self, n: int, seed: int) -> None:
            self.n, self.seed, self.epoch = n, seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            gen = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            return iter(torch.randperm(self.n, generator=gen).tolist())

        def __len__(self) -> int:
            return self.n

    return EpochSampler


Row = tuple[list[int], int]
"""A training row: its token ids, and how many leading ids are context only (not in the loss)."""


def _encode(tokenizer: Any, texts: Sequence[str | Pair], max_length: int, chat: bool = False,
            response_only: bool = False) -> list[Row]:
    """Token ids per row through the one tokenization (:mod:`gitops.ml.tokens`): the tokenizer's
    own special tokens, EOS appended so the model learns where a row ends, exactly as eval scores.
    A row is a text or a formatted (prompt, response) pair (:mod:`gitops.ml.textformat`); a pair
    longer than ``max_length`` loses the middle of its prompt, never its response (a classifier
    must see its label). ``response_only``: the loss covers the response and EOS alone."""
    rows = [_encode_row(tokenizer, (t, None) if isinstance(t, str) else t, max_length, chat, response_only)
            for t in texts]
    rows = [r for r in rows if len(r[0]) - max(r[1], 1) >= 1]  # something left to predict
    if not rows:
        raise TrainError("no training text is long enough to learn from (each needs at least 2 tokens)")
    return rows


def _encode_row(tokenizer: Any, pair: Pair, max_length: int, chat: bool, response_only: bool) -> Row:
    ids = tokens.sequence_ids(tokenizer, textformat.render(tokenizer, pair, chat), chat=chat)
    if pair[1] is None:
        return ids[:max_length], 0
    # the prompt's tokens as training and prediction tokenize them jointly with what follows (the
    # longest common prefix with the prompt's own ids, as gitops.ml.choices scores a label)
    prompt = tokens.text_ids(tokenizer, textformat.render_prompt(tokenizer, pair[0], chat), chat=chat)
    n = 0
    while n < min(len(prompt), len(ids) - 1) and prompt[n] == ids[n]:
        n += 1
    context, answer = ids[:max(n, 1)], ids[max(n, 1):]
    if len(ids) > max_length:  # cut the prompt's middle (as prediction does), keep the answer whole
        answer = answer[:max_length - 2]
        context = tokens.fit_ids(tokenizer, context, max_length - len(answer))
    return context + answer, len(context) if response_only else 0


def _collate(pad_id: int) -> Callable[[list[Row]], dict[str, Any]]:
    import torch

    def collate(rows: list[Row]) -> dict[str, Any]:
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (r, context) in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
            labels[i, context: len(r)] = ids[i, context: len(r)]  # padding and context-only ids: no loss
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def _loaders(tokenizer: Any, train_texts: Sequence[str | Pair], valid_texts: Sequence[str | Pair],
             cfg: TrainConfig) -> tuple:
    import torch

    t = cfg.trainer
    pad_id = tokens.pad_id(tokenizer)  # padded positions are masked out of the loss
    only = cfg.loss == "response"
    train_rows = _encode(tokenizer, train_texts, t.max_length, cfg.chat, only)
    valid_rows = _encode(tokenizer, valid_texts, t.max_length, cfg.chat, only) if valid_texts else []
    sampler = _sampler_cls()(len(train_rows), t.seed)
    # Each DataLoader iterator draws a seed from its generator; with the global one that draw would
    # shift the dropout RNG of a resumed run (its iterator starts after the RNG states are restored).
    train = torch.utils.data.DataLoader(train_rows, batch_size=t.batch_size, sampler=sampler,
                                        collate_fn=_collate(pad_id), generator=torch.Generator().manual_seed(t.seed))
    valid = torch.utils.data.DataLoader(valid_rows, batch_size=t.batch_size, shuffle=False,
                                        collate_fn=_collate(pad_id),
                                        generator=torch.Generator().manual_seed(t.seed)) if valid_rows else None
    return train, valid, sampler


def target_modules(model: Any, configured: list[str] | None) -> list[str] | str:
    """The modules LoRA adapts: the config's list (``[all-linear]`` is peft's keyword for every
    linear layer), else peft's own default for the architecture
    (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``, keyed by ``config.model_type``); an
    architecture peft has no default for is a TrainError naming the model's linear layers."""
    if configured:
        return "all-linear" if configured == ["all-linear"] else list(configured)
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    model_type = getattr(model.config, "model_type", None)
    if model_type in DEFAULTS:
        return list(DEFAULTS[model_type])
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if type(module).__name__ in ("Linear", "Conv1D") and not name.endswith("lm_head")})
    raise TrainError(f"adapter.target_modules: peft has no default for {model_type} models; set it, e.g. "
                     f"[{', '.join(linear[:4])}] (this model's linear layers: {', '.join(linear)}) or [all-linear]")


def _peft_model(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    a = cfg.adapter
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout,
                      target_modules=target_modules(model, a.target_modules))
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # e.g. a target module the model does not have
        raise TrainError(f"adapter config does not fit the base model: {exc}") from None


def _evaluate(accelerator: Any, model: Any, valid: Any) -> float | None:
    """Token-weighted mean loss on the valid split, gathered over all processes."""
    import torch

    if valid is None:
        return None
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for batch in valid:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
            per_row = torch.stack([losses.sum(1), (labels != -100).sum(1).to(losses.dtype)], 1)
            # gather_for_metrics drops the rows accelerate repeated to even out the shards
            total += accelerator.gather_for_metrics(per_row).double().sum(0).cpu()
    model.train()
    return float(total[0] / total[1]) if total[1] > 0 else None


def _latest_checkpoint(out_dir: Path) -> Path | None:
    ckpts = [p for p in (out_dir / CHECKPOINTS).glob("step-*") if (p / STATE_FILE).exists()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[1]), default=None)


def _save_checkpoint(accelerator: Any, out_dir: Path, state: TrainState) -> None:
    """Write ``checkpoints/step-N`` (atomically: state file last, then rename) and drop older ones."""
    base = out_dir / CHECKPOINTS
    tmp = base / f"tmp-step-{state.step}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)  # before the barrier: other ranks write their RNG states into it
    accelerator.wait_for_everyone()
    # accelerate warns on every save that the tied lm_head weight was not duplicated: expected here
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state)), encoding="utf-8")
        final = base / f"step-{state.step}"
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in base.iterdir():
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _make_accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator

    if problem := precision_problem(cfg.trainer.precision):
        raise TrainError(problem)
    import torch

    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[cfg.trainer.precision]
    # Several processes (torchrun, `accelerate launch`) on a machine without CUDA: accelerate only
    # forms a gloo CPU group when told cpu=True, else each process would train alone.
    cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(mixed_precision=mixed, gradient_accumulation_steps=cfg.trainer.gradient_accumulation_steps,
                       cpu=cpu)


def _scheduler(optimizer: Any, total_steps: int) -> Any:
    import torch

    # Stepped by hand once per optimizer step (accelerate would step a prepared one per process).
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / max(1, total_steps)))


def train_model(train_texts: Sequence[str | Pair], valid_texts: Sequence[str | Pair], base_model: str | Path,
                cfg: TrainConfig,
                out_dir: Path, *, resume: bool = False, progress: Progress | None = None,
                base_adapter: Path | None = None, merge: bool = True, threads: int | None = None) -> TrainResult:
    """Fine-tune a LoRA adapter on ``train_texts`` (texts, or (prompt, response) pairs formatted as
    ``cfg``'s prompt section says); write ``adapter/``, ``merged/``, ``metrics.json``
    and ``loss_curve.json`` under ``out_dir`` (main process). ``resume`` continues from the last
    checkpoint in ``out_dir`` when there is one. ``base_adapter`` is a parent's LoRA adapter, merged
    into the base before the new adapter is added. ``merge=False`` skips ``merged/`` (a version that
    stores the adapter alone never reads it: on SmolLM2 that is 538 MB not written). ``threads``
    caps torch's CPU threads (default: torch's own choice, every core)."""
    import torch
    from accelerate.utils import set_seed

    if threads is not None:
        torch.set_num_threads(threads)
    if not train_texts:
        raise TrainError("the train split is empty: nothing to train on")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    accelerator = _make_accelerator(cfg)
    set_seed(cfg.trainer.seed)  # before the LoRA init, so the adapter starts the same every time
    model, tokenizer = load_base(base_model, base_adapter)
    model = _peft_model(model, cfg)
    train, valid, sampler = _loaders(tokenizer, train_texts, valid_texts, cfg)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.trainer.learning_rate)
    model, optimizer, train = accelerator.prepare(model, optimizer, train)
    valid = accelerator.prepare(valid) if valid is not None else None
    total = _total_steps(len(train), cfg)
    scheduler = _scheduler(optimizer, total)
    accelerator.register_for_checkpointing(scheduler)
    state, resumed_from = TrainState(), None
    if resume and (ckpt := _latest_checkpoint(out_dir)) is not None:
        accelerator.load_state(str(ckpt))
        state = TrainState(**json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8")))
        resumed_from = state.step
    elif accelerator.is_main_process and (out_dir / CHECKPOINTS).exists():
        shutil.rmtree(out_dir / CHECKPOINTS)  # a fresh run must not resume from a stale one later
    accelerator.wait_for_everyone()
    _run_loop(accelerator, model, optimizer, scheduler, train, valid, sampler, cfg, out_dir, state, total,
              progress, started)
    return _finish(accelerator, model, tokenizer, out_dir, state, resumed_from, merge)


def _total_steps(batches_per_epoch: int, cfg: TrainConfig) -> int:
    t = cfg.trainer
    total = t.epochs * math.ceil(batches_per_epoch / t.gradient_accumulation_steps)
    return min(total, t.max_steps) if t.max_steps else total


def _run_loop(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, train: Any, valid: Any,
              sampler: Any, cfg: TrainConfig, out_dir: Path, state: TrainState, total: int,
              progress: Progress | None, started: float) -> None:
    import torch

    wall_before = state.wall_time_s
    model.train()
    while state.step < total and state.epoch < cfg.trainer.epochs:
        sampler.set_epoch(state.epoch)
        skip = state.batches_in_epoch
        tick = time.perf_counter()
        for i, batch in enumerate(train):
            if i < skip:
                continue  # batches this epoch already trained on before the checkpoint
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            scored = batch["attention_mask"].sum()  # tokens run through the model (tokens/s), in the loss or not
            stats = accelerator.reduce(torch.stack([loss.detach().float().cpu() * 1.0, torch.tensor(1.0),
                                                    scored.float().cpu()]).to(accelerator.device), "sum")
            state.window_loss += float(stats[0])
            state.window_count += int(stats[1])
            state.tokens += int(stats[2])
            state.batches_in_epoch = i + 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state.step += 1
            now = time.perf_counter()
            state.train_time_s += now - tick
            if state.step % cfg.trainer.eval_steps == 0 or state.step >= total:
                _log_and_checkpoint(accelerator, model, valid, out_dir, state, wall_before, started)
            if progress is not None and accelerator.is_main_process:
                progress(state.step, total, state.curve[-1] if state.curve else {})
            tick = time.perf_counter()
            if state.step >= total:
                break
        else:
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0


def _log_and_checkpoint(accelerator: Any, model: Any, valid: Any, out_dir: Path, state: TrainState,
                        wall_before: float, started: float) -> None:
    eval_loss = _evaluate(accelerator, model, valid)
    train_loss = state.window_loss / state.window_count if state.window_count else None
    state.curve.append({"step": state.step, "train_loss": train_loss, "eval_loss": eval_loss})
    state.window_loss, state.window_count = 0.0, 0
    state.wall_time_s = wall_before + (time.perf_counter() - started)
    _save_checkpoint(accelerator, out_dir, state)


def _finish(accelerator: Any, model: Any, tokenizer: Any, out_dir: Path, state: TrainState,
            resumed_from: int | None, merge: bool = True) -> TrainResult:
    """Save adapter, merged model, metrics and curve (main process); all processes return the result."""
    last = state.curve[-1] if state.curve else {}
    eval_loss = last.get("eval_loss")
    metrics: dict[str, float | None] = {
        "train_loss": _round(last.get("train_loss")),
        "eval_loss": _round(eval_loss),
        "perplexity": _round(math.exp(min(eval_loss, 50.0)) if eval_loss is not None else None),
        "tokens_per_s": _round(state.tokens / state.train_time_s if state.train_time_s > 0 else 0.0),
        "wall_time_s": _round(state.wall_time_s),
        "steps": state.step,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    adapter_dir, merged_dir = out_dir / "adapter", out_dir / "merged"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        if merge:
            merged = unwrapped.merge_and_unload()
            merged.save_pretrained(str(merged_dir))
            tokenizer.save_pretrained(str(merged_dir))
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        (out_dir / "loss_curve.json").write_text(json.dumps(state.curve, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    return TrainResult(out_dir=out_dir, adapter_dir=adapter_dir, merged_dir=merged_dir, metrics=metrics,
                       curve=list(state.curve), steps=state.step, resumed_from=resumed_from,
                       is_main_process=accelerator.is_main_process, num_processes=accelerator.num_processes)


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)
