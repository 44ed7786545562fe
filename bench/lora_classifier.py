"""Does a short LoRA fine-tune of a classification model answer with labels? (issue 20, item 2)

The case from the issue, made reproducible offline: reviews long enough that ``trainer.max_length``
(64, the seed example's value) is shorter than a row (each text here is three demo reviews joined,
about 100 tokens on SmolLM2, like the drugs.com reviews), a LoRA of ``--steps`` optimizer steps,
then ``gitops predict`` decoding freely on the test rows. It prints the invalid-output rate (outputs
that matched no label), accuracy, and a few raw outputs, as JSON.

Everything runs through the CLI in subprocesses (``python -m gitops``), so the code under test is
whatever ``PYTHONPATH`` points at: run it once per checkout to compare two versions of gitops.

    python bench/lora_classifier.py [--model smollm2|toy] [--steps 10] [--rows 40] [--max-length 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = 'input: "Review: {text}\\nRating:"\nlabel: rating\nlabels: [{labels}]\nfallback: "{fallback}"\n'
WORDS = {"1": "terrible", "2": "poor", "3": "okay", "4": "fine", "5": "great"}  # one toy token each


def gitops(cwd: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "gitops", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"gitops {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def long_reviews(n_rows: int, words: bool = False) -> list[dict]:
    """Rows of three demo reviews of the same rating joined: long texts with a known label (the
    rating, or with ``words`` a word for it: the toy base never saw a digit, so it cannot learn
    to write one in a few steps, but it knows these words)."""
    import csv

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from gitops.ml.corpus import corpus_path

    by_rating: dict[str, list[str]] = {}
    with open(corpus_path(), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_rating.setdefault(str(row["rating"]), []).append(row["text"])
    out = []
    for i in range(n_rows):
        rating = str(i % 5 + 1)
        texts = by_rating[rating]
        out.append({"id": f"r{i:05d}", "text": " ".join(texts[(3 * i + j) % len(texts)] for j in range(3)),
                    "rating": WORDS[rating] if words else rating})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="smollm2 (default) or toy (the embedded tiny base)")
    ap.add_argument("--steps", type=int, default=10, help="LoRA optimizer steps (default 10, as in the issue)")
    ap.add_argument("--data-rows", type=int, default=600, help="rows in the data set (default 600)")
    ap.add_argument("--rows", type=int, default=40, help="test rows predicted (default 40)")
    ap.add_argument("--max-length", type=int, default=64, help="trainer.max_length (default 64)")
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3, the seed example's)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    ap.add_argument("--labels", choices=("digits", "words"), default="digits",
                    help="the labels: ratings 1-5 (default) or a word per rating (what the toy base can learn)")
    ap.add_argument("--target-modules", default=None, help="LoRA target modules, e.g. all-linear (default: peft's)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)   # the old CLI has no train --threads
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gitops(tmp, "init", "repo", "--remote", str(tmp / "remote"))
        repo = tmp / "repo"
        data = tmp / "reviews.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in long_reviews(args.data_rows, args.labels == "words")))
        labels = list(WORDS.values()) if args.labels == "words" else list(WORDS)
        (tmp / "task.yaml").write_text(TASK.replace("{labels}", ", ".join(f'"{x}"' for x in labels))
                                       .replace("{fallback}", labels[2]))
        gitops(repo, "dataset", "create", "reviews", "--column", "id:string", "--column", "text:string",
               "--column", "rating:string", "--text-field", "text", "--key", "id")
        gitops(repo, "ingest", str(data), "--dataset", "reviews")
        if args.model == "smollm2":
            gitops(repo, "register-base", "smollm2")
            base = "smollm2-135m-instruct@v1"
        else:
            base = "gitops/tiny-opt"
        gitops(repo, "model", "create", "ratings", "--task", "classification", "--classification",
               str(tmp / "task.yaml"))
        cfg = {"base_model": base, "dataset": "reviews@v1", "output": {"model": "ratings"},
               "adapter": {"r": 8, "alpha": 16, "dropout": 0.05,
                           **({"target_modules": [args.target_modules]} if args.target_modules else {})},
               "trainer": {"epochs": 1, "max_steps": args.steps, "batch_size": 8, "max_length": args.max_length,
                           "learning_rate": args.lr, "eval_steps": args.steps, "seed": 42}}
        (tmp / "lora.yaml").write_text(json.dumps(cfg))
        t0 = time.perf_counter()
        gitops(repo, "train", str(tmp / "lora.yaml"))
        train_s = time.perf_counter() - t0
        out = tmp / "preds.jsonl"
        gitops(repo, "predict", "ratings@v1", "--dataset", "reviews@v1", "--limit", str(args.rows), "--out", str(out),
               "--threads", str(args.threads), *(["--no-probabilities"] if _has_flag(repo) else []))
        preds = [json.loads(line) for line in out.read_text().splitlines()]
        invalid = [p for p in preds if not p["matched"]]
        print(json.dumps({"model": args.model, "labels": args.labels, "steps": args.steps, "lr": args.lr,
                          "max_length": args.max_length,
                          "rows": len(preds), "invalid_rate": len(invalid) / len(preds),
                          "accuracy": sum(p["prediction"] == p["label"] for p in preds) / len(preds),
                          "train_seconds": round(train_s, 1), "load_average": os.getloadavg()[0],
                          "raw_outputs": [p["raw_output"] for p in preds[:5]]}, indent=1))


def _has_flag(repo: Path) -> bool:
    """Whether this gitops' predict has --no-probabilities (not needed here: free decoding is measured)."""
    res = subprocess.run([sys.executable, "-m", "gitops", "predict", "--help"], cwd=repo, capture_output=True,
                         text=True)
    return "--no-probabilities" in res.stdout


if __name__ == "__main__":
    main()
