"""Generation throughput of the eval harness vs a naive per-sample ``model.generate`` loop.

One run, one OPT-125m-shaped model (``OPTConfig()`` defaults, the shape of facebook/opt-125m:
hidden 768, 12 layers, 12 heads, ffn 3072, vocabulary 50272; random weights, no hub), the same
prompts and the same greedy decoding for every engine:

- ``naive``: transformers, one prompt at a time, ``model.generate(...)`` in a Python loop (what an
  ad-hoc eval script does);
- ``hf``: the harness on gitops' ``hf`` backend (left-padded batches through transformers);
- ``ct2 float32`` / ``ct2 int8``: the harness on CTranslate2 conversions of the same weights.

Every engine generates exactly ``--new-tokens`` tokens per prompt: the end token's embedding row is
zeroed, so with random weights it is never the argmax (otherwise a random model may stop after a
different number of tokens in each engine, and tokens/s would compare unequal work). Each engine gets
one untimed warm-up call; the engines run in interleaved rounds (every engine once, ``--repeats``
rounds) and the best and the median of each are reported; every ratio is against the naive loop,
transformers float32, and each row names its engine's precision.

    python bench/eval_throughput.py [--prompts 32] [--new-tokens 16] [--batch-size 32] [--threads 2]

``--model smollm2`` measures the real SmolLM2-135M-Instruct instead (raw engines and the harness
side by side, at 1 and 2 threads, with the bandwidth limit): see bench/_smollm2_eval.py.

    python bench/eval_throughput.py --model smollm2 [--threads-list 1,2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCAB = 50272  # facebook/opt-125m's vocabulary, padded to a multiple of 8 as its config says


def build_tokenizer(texts: list[str], size: int = VOCAB):
    """Byte-level BPE trained on the demo corpus, its vocabulary filled up to ``size`` entries.

    The corpus is too small to learn 50k merges; the filler entries have no merges, so encoding
    never produces them, but every id the model can emit decodes and CTranslate2's vocabulary
    matches the embedding's rows, as with the real OPT tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=8000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for i in range(size - len(vocab)):
        vocab[f"<fill{i}>"] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", model_max_length=2048,
                                   padding_side="left")


def build_model(out: Path, texts: list[str]) -> Path:
    """Save an OPT-125m-shaped model with random weights and its tokenizer in ``out``."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    tokenizer = build_tokenizer(texts)
    assert len(tokenizer) == VOCAB, len(tokenizer)
    torch.manual_seed(0)
    config = OPTConfig(pad_token_id=1, bos_token_id=2, eos_token_id=2)  # facebook/opt-125m's shape
    model = OPTForCausalLM(config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[config.eos_token_id].zero_()  # see module doc
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def naive_loop(model_dir: Path, prompts: list[str], new_tokens: int) -> tuple[int, float]:
    """One ``model.generate`` call per prompt: (tokens generated, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    kwargs = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)

    def run(batch: list[str]) -> tuple[int, float]:
        tokens, t0 = 0, time.perf_counter()
        for prompt in batch:
            ids = tok(prompt, return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(**ids, **kwargs)
            tokens += out.shape[1] - ids["input_ids"].shape[1]
        return tokens, time.perf_counter() - t0

    run(prompts[:1])  # warm-up
    return run(prompts)


def harness_run(path: Path, fmt: str, prompts: list[str], new_tokens: int, batch_size: int,
                threads: int) -> tuple[int, float]:
    """The eval harness's throughput measurement on gitops' backend: (tokens generated, seconds)."""
    from gitops.eval.harness import MeasureConfig, throughput
    from gitops.ml.backends import open_backend

    config = MeasureConfig(max_new_tokens=new_tokens, batch_size=batch_size)
    with open_backend(path, fmt, threads=threads) as backend:
        [warm] = backend.generate(prompts[:1], max_new_tokens=new_tokens)  # warm-up, untimed
        assert warm.new_tokens == new_tokens, "the end token was generated; see the module doc"
        tokens_per_s = throughput(backend, prompts, config)
    tokens = len(prompts) * new_tokens  # exact: the end token is never chosen
    return tokens, tokens / tokens_per_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32, help="number of prompts (default 32)")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per prompt (default 16)")
    parser.add_argument("--batch-size", type=int, default=32, help="harness batch size (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every engine (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds per engine (default 3)")
    parser.add_argument("--skip-ct2-float32", action="store_true", help="leave out the ct2 float32 row")
    parser.add_argument("--model", choices=("opt125m", "smollm2"), default="opt125m",
                        help="opt125m: a random OPT-125m-shaped model (default); smollm2: the real SmolLM2")
    parser.add_argument("--threads-list", default="1,2", help="smollm2: thread counts to measure (default 1,2)")
    args = parser.parse_args(argv)
    if args.model == "smollm2":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _smollm2_eval import main as smollm2_main

        return smollm2_main([int(t) for t in args.threads_list.split(",")], args.new_tokens,
                            args.repeats)

    import torch
    from transformers.utils import logging as hf_logging

    from gitops.convert.ct2 import convert_to_ct2
    from gitops.eval.harness import make_prompts
    from gitops.ml.corpus import load_corpus

    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()  # keep the output to the table
    texts = [row["text"] for row in load_corpus()]
    prompts = [p.text for p in make_prompts(texts[-args.prompts * 2:])][:args.prompts]
    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        t0 = time.perf_counter()
        model_dir = build_model(Path(tmp) / "hf", texts)
        quants = ["float32", "int8"] if not args.skip_ct2_float32 else ["int8"]
        ct2_dirs = {q: convert_to_ct2(model_dir, Path(tmp) / f"ct2-{q}", q) for q in quants}
        print(f"built OPT-125m-shaped model and {len(quants)} ct2 conversion(s) in "
              f"{time.perf_counter() - t0:.0f} s; {len(prompts)} prompts x {args.new_tokens} new tokens, "
              f"greedy, {args.threads} thread(s), harness batch size {args.batch_size}", file=sys.stderr)
        cases = [("naive transformers loop (batch 1, hf float32)", lambda: naive_loop(model_dir, prompts,
                                                                                    args.new_tokens)),
                 ("harness hf (batched torch, float32)", lambda: harness_run(
                     model_dir, "hf", prompts, args.new_tokens, args.batch_size, args.threads))]
        cases += [(f"harness ct2 {q}", lambda p=path: harness_run(
            p, "ct2", prompts, args.new_tokens, args.batch_size, args.threads)) for q, path in ct2_dirs.items()]
        runs: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in cases}
        for _ in range(args.repeats):   # interleaved rounds: drifting load falls on every engine alike
            for name, fn in cases:
                runs[name].append(fn())
    print_table(runs)
    return 0


def print_table(runs: dict[str, list[tuple[int, float]]]) -> None:
    import os
    import statistics

    rates = {name: [t / s for t, s in rs] for name, rs in runs.items()}
    naive = next(iter(rates.values()))
    print(f"{'engine':<46} {'tokens':>7} {'best tok/s':>11} {'median':>8} {'vs naive (hf float32): best':>28} "
          f"{'median':>7}   load average {os.getloadavg()[0]:.1f}")
    for name, rs in rates.items():
        print(f"{name:<46} {runs[name][0][0]:>7} {max(rs):>11.1f} {statistics.median(rs):>8.1f} "
              f"{max(rs) / max(naive):>27.1f}x {statistics.median(rs) / statistics.median(naive):>6.1f}x")


if __name__ == "__main__":
    raise SystemExit(main())
