"""Shared ML fixtures: the embedded default base model, built once per test session.

tests/conftest.py registers this module (``pytest_plugins``): any test can ask for ``base_model_dir``.
Set ``GITOPS_TEST_CACHE_DIR`` to keep the built model between sessions (it is keyed by its
recipe hash, so a changed recipe still rebuilds).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ml_cache_dir(tmp_path_factory) -> Path:
    env = os.environ.get("GITOPS_TEST_CACHE_DIR")
    return Path(env) if env else tmp_path_factory.getbasetemp() / "gitops-cache"


@pytest.fixture(scope="session")
def base_model_dir(ml_cache_dir) -> Path:
    import torch

    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from threads
    from gitops.ml.basemodel import default_base_model

    return default_base_model(ml_cache_dir)


def make_lora_adapter(base_dir: Path, out_dir: Path, *, steps: int = 2, lr: float = 0.05,
                      save_tokenizer: bool = False) -> Path:
    """A real LoRA adapter: peft on the base, a couple of optimizer steps on corpus text, saved."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                      lora_dropout=0.0, task_type="CAUSAL_LM"))
    batch = tok(["Terrible toaster, it broke on day one.", "Great kettle, I love it."],
                return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(str(out_dir))
    if save_tokenizer:
        tok.save_pretrained(str(out_dir))
    return out_dir
