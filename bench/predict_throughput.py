"""``gitops predict`` rows/s vs a naive per-row transformers loop; retrieval's share of prediction time.

One temporary GitOps repository: a ratings data set of ``--index-rows`` rows (80% train: the
retrieval index), the embedded toy base (or ``--model DIR``, any local causal LM) registered as
``ratings-base@v1``, and a ``task: classification`` model with three prompt versions on it:
zero-shot, few-shot random k=3 and few-shot bm25 k=3. Then, on the same first ``--rows`` rows of
the test split and the same greedy decoding:

- ``naive``: transformers, one ``model.generate`` per row in a Python loop, over exactly the
  prompts ``gitops predict`` renders for the zero-shot variant (what an ad-hoc script does);
- ``predict``: ``gitops.api.predict`` on the zero-shot variant (batches of ``--batch-size``);
- ``retrieval``: the time to open the cached index (read the train rows, load the index) and fetch
  the examples of those rows (random, bm25), next to the time ``predict`` takes for the few-shot
  variant (model loading included, as in every ``predict`` figure here): the share retrieval adds.

    python bench/predict_throughput.py [--rows 64] [--index-rows 10000] [--batch-size 32] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = {"1": "awful broken refund", "2": "poor flimsy disappointing", "3": "okay average fine",
         "4": "good solid pleasant", "5": "excellent superb love"}
TASK = 'input: "Review: {text}"\nlabel: rating\nlabels: ["1", "2", "3", "4", "5"]\nfallback: "3"\n'
MAX_NEW = 3


def make_repo(tmp: Path, model_dir: Path, index_rows: int):  # noqa: ANN201 - a Workspace
    from gitops import api

    root = api.init(tmp / "repo", remote=str(tmp / "remote")).root
    ws = api.Workspace.open(root)
    data = tmp / "reviews.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i:06d}", "text": f"{WORDS[str(i % 5 + 1)]} item {i}",
                                        "rating": str(i % 5 + 1)}) + "\n" for i in range(index_rows)))
    api.create_dataset(ws, "reviews", {"id": "string", "text": "string", "rating": "string"}, "text", ["id"])
    api.ingest(api.Workspace.open(root), [data], "reviews")
    ws = api.Workspace.open(root)
    api.create_model(ws, "ratings-base")
    api.register(api.Workspace.open(root), "ratings-base", model_dir, fmt="hf")
    (tmp / "task.yaml").write_text(TASK)
    api.create_model(api.Workspace.open(root), "ratings", task="classification", classification=tmp / "task.yaml")
    for name, retrieval in (("zero", None), ("random", {"type": "random", "k": 3}),
                            ("bm25", {"type": "bm25", "k": 3})):
        cfg = {"base": "ratings-base@v1", "task": "Rate the review from 1 to 5.",
               "template": "{task}\n\n{context}{sample}\nRating:", "generation": {"max_new_tokens": MAX_NEW}}
        if retrieval:
            cfg.update(dataset="reviews@v1", retrieval=retrieval, example="Review: {text}\nRating: {rating}\n\n")
        (tmp / f"{name}.yaml").write_text(json.dumps(cfg))
        api.add_prompt(api.Workspace.open(root), "ratings", tmp / f"{name}.yaml")
    return api.Workspace.open(root)


def naive(model_dir: Path, prompts: list[str]) -> float:
    """Seconds for one ``generate`` per prompt (greedy, ``MAX_NEW`` tokens at most)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        model.generate(**tok(prompts[0], return_tensors="pt"), max_new_tokens=MAX_NEW, do_sample=False)
        t0 = time.perf_counter()
        for p in prompts:
            model.generate(**tok(p, return_tensors="pt"), max_new_tokens=MAX_NEW, do_sample=False,
                           pad_token_id=tok.pad_token_id or tok.eos_token_id)
        return time.perf_counter() - t0


def retrieval_seconds(ws, ref: str, rows: list[dict]) -> float:  # noqa: ANN001
    """Seconds to open the variant's cached index (train rows read, index loaded) and fetch the rows' examples."""
    from gitops.predict.pipeline import _retrieval
    from gitops.predict.retrieval import build_retriever

    _, version = ws.registry().resolve(ref)
    task = ws.registry().model("ratings").classification
    t0 = time.perf_counter()
    retriever = build_retriever(ws, version.config["dataset"], _retrieval(version.config), task.render)
    assert retriever.kind == "random" or retriever.cached
    retriever.retrieve_many(rows)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--index-rows", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, help="a local causal LM directory (default: the embedded toy base)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from gitops import api
    from gitops.ml.basemodel import default_base_model
    from gitops.predict import pipeline

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_dir = args.model or default_base_model(tmp / "cache")
        ws = make_repo(tmp, model_dir, args.index_rows)
        plan = pipeline.plan_predict(ws, "ratings@v1", "reviews@v1", "test", limit=args.rows)
        prompts = [pipeline.PromptRenderer(plan.task, plan.config).render(r, []) for r in plan.rows]
        t_naive = naive(model_dir, prompts)
        api.predict(ws, "ratings@v1", "reviews@v1", limit=4, batch_size=4)  # warm-up (load, first batch)
        zero = api.predict(ws, "ratings@v1", "reviews@v1", limit=args.rows, batch_size=args.batch_size,
                           threads=args.threads)
        print(f"{len(prompts)} rows, {MAX_NEW} new tokens, threads {args.threads}, index {args.index_rows} rows")
        print(f"{'naive per-row loop':<28}{len(prompts) / t_naive:>10.1f} rows/s")
        print(f"{'gitops predict (zero-shot)':<28}{zero.rows_per_second:>10.1f} rows/s"
              f"   {zero.rows_per_second * t_naive / len(prompts):.1f}x naive")
        for ref, name in (("ratings@v2", "random k=3"), ("ratings@v3", "bm25 k=3")):
            api.predict(ws, ref, "reviews@v1", limit=4, batch_size=4)  # builds and caches the index
            run = api.predict(ws, ref, "reviews@v1", limit=args.rows, batch_size=args.batch_size, threads=args.threads)
            spent = retrieval_seconds(ws, ref, plan.rows)
            print(f"{'gitops predict (' + name + ')':<28}{run.rows_per_second:>10.1f} rows/s"
                  f"   retrieval {spent * 1000:.1f} ms = {spent / run.seconds:.1%} of its prediction time")


if __name__ == "__main__":
    main()
