"""Loading a base model for training: a local directory or a hub id, optionally plus a LoRA adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops.errors import TrainError


def precision_problem(precision: str) -> str | None:
    """Why ``precision`` cannot run on this machine, or None. fp16 needs CUDA; bf16 a GPU that has it,
    or the CPU (autocast on CPU supports bf16)."""
    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        return "trainer.precision fp16 needs a CUDA GPU; use fp32 or bf16 on this machine"
    if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "trainer.precision bf16 is not supported by this GPU; use fp16 or fp32"
    return None


def _quiet_transformers() -> None:
    # transformers' own "Loading weights" bars would interleave with ours on stderr.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_base(base_model: str | Path, adapter: Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local dir or hub id; an ``adapter`` (a LoRA dir) is merged in, so
    the caller always gets a plain model to put a fresh adapter on."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    source = str(base_model)
    try:
        model = AutoModelForCausalLM.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load base model '{source}': {_first_line(exc)}") from None
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        except (OSError, ValueError) as exc:
            raise TrainError(f"cannot load LoRA adapter '{adapter}' onto '{source}': {_first_line(exc)}") from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked out of the loss anyway
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
