"""Training throughput: gitops's ``train_model`` vs a minimal hand-written torch + peft loop.

Same base model (the embedded tiny OPT), same texts, same LoRA and trainer settings, measured side
by side in one run, alternating, best of ``--repeats``. Tokens/s counts the non-padding tokens trained
on, over the training loop's time (model loading and saving excluded for both, eval disabled for
both by an ``eval_steps`` past the end). Prints both and the ratio gitops / plain (target >= 1.0 on CPU).

    PYTHONPATH=. python bench/train_throughput.py --steps 80 --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def plain_loop(texts: list[str], base: Path, cfg) -> float:  # type: ignore[no-untyped-def]
    """The reference: what one would write by hand with torch + peft. Returns tokens/s."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t, a = cfg.trainer, cfg.adapter
    torch.manual_seed(t.seed)
    tok = AutoTokenizer.from_pretrained(str(base))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout,
        target_modules=a.target_modules))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.learning_rate)
    rows = tok([x + tok.eos_token for x in texts], truncation=True, max_length=t.max_length)["input_ids"]
    model.train()
    tokens, start = 0, time.perf_counter()
    for step in range(t.max_steps):
        batch = rows[(step * t.batch_size) % len(rows):][: t.batch_size] or rows[: t.batch_size]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), tok.pad_token_id)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(batch):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        tokens += int(mask.sum())
    return tokens / (time.perf_counter() - start)


def gitops_loop(texts: list[str], base: Path, cfg) -> float:  # type: ignore[no-untyped-def]
    from gitops.train.lora import train_model

    with tempfile.TemporaryDirectory() as out:
        return train_model(texts, [], base, cfg, Path(out)).metrics["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from gitops.ml.basemodel import default_base_model
    from gitops.ml.corpus import load_corpus
    from gitops.train import train_config as config

    torch.set_num_threads(args.threads)
    base = default_base_model()
    texts = [row["text"] for row in load_corpus()]
    cfg = config.from_dict({
        "base_model": str(base), "dataset": "bench@v1", "output": {"model": "bench"},
        "adapter": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "trainer": {"batch_size": args.batch_size, "max_steps": args.steps, "eval_steps": args.steps + 1,
                    "max_length": 64, "learning_rate": 1e-3, "epochs": 100},
    })
    import os
    import statistics

    runs: dict[str, list[float]] = {"gitops": [], "plain": []}
    for _ in range(args.repeats):  # alternate so drifting machine load hits both alike
        runs["plain"].append(plain_loop(texts, base, cfg))
        runs["gitops"].append(gitops_loop(texts, base, cfg))
    best = {k: max(v) for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"both sides float32, {args.threads} thread(s), {args.repeats} alternating rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"plain torch+peft loop: best {best['plain']:10.0f} tokens/s, median {med['plain']:10.0f}")
    print(f"gitops train_model:    best {best['gitops']:10.0f} tokens/s, median {med['gitops']:10.0f}")
    print(f"ratio gitops/plain:    best {best['gitops'] / best['plain']:10.2f}x, median "
          f"{med['gitops'] / med['plain']:.2f}x  (target >= 1.0)")


if __name__ == "__main__":
    main()
