"""``gitops site`` on a large registry: 1,000 versions and 5,000 alias moves in ≤ 10 s, no page over 1 MiB.

Builds, in a temporary directory, a gitops repo (``gitops init`` + ``gitops model create``, then
``git fast-import``): one model with 1,000 versions, one commit each (model.yaml appended + a DVC
pointer, what ``gitops register`` commits; every third a ct2 variant of the one before, the
others fine-tuned from the last trained one, each on one of 50 data set versions), 5,000 alias
moves over 5 aliases (one commit each, every tenth a merged pull request), and 20 committed
evaluation results documents. Then, each as a fresh process the way CI runs it:

- cold: the first ``gitops site`` of a fresh clone (no parse cache, empty output directory);
- warm, nothing changed: every page's inputs hash to what the manifest holds, nothing is rendered;
- after one new version is registered: only the pages that show it are written.

    python bench/site_render.py [--versions 1000] [--moves 5000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fastrepo import FastImport

MODEL = "review-autocomplete"
ALIASES = ("production", "staging", "canary", "shadow", "nightly")
DATASET_VERSIONS = 50
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=ENV).stdout


def version_entry(n: int) -> tuple[str, str]:
    md5 = hashlib.md5(f"weights {n}".encode()).hexdigest() + ".dir"
    ct2 = n % 3 == 0
    parent = n - 1 if ct2 else (n - 2 if n % 3 == 1 and n > 2 else n - 1)
    entry = (f"  v{n}:\n    format: {'ct2' if ct2 else 'hf'}\n    path: models/{MODEL}/v{n}\n    md5: {md5}\n"
             + ("    quantization: int8\n" if ct2 else "")
             + (f"    parent: v{parent}\n" if n > 1 else "")
             + f"    dataset: reviews@v{(n - 1) * DATASET_VERSIONS // 1000 % DATASET_VERSIONS + 1}\n"
             f"    created_at: '2026-01-01T00:00:00Z'\n    author: Bench Bot <bench@example.com>\n"
             + ("" if ct2 else f"    metrics:\n      eval_loss: {2 + (n % 97) / 1000:.4f}\n"
                               f"      perplexity: {7 + (n % 89) / 100:.3f}\n      train_loss: {1.5 + n / 5000:.4f}\n"))
    pointer = f"outs:\n- md5: {md5}\n  size: {1024 * n}\n  nfiles: 2\n  hash: md5\n  path: v{n}\n"
    return entry, pointer


def dataset_text() -> str:
    text = ("name: reviews\ndescription: Product reviews\ncolumns:\n  id: string\n  text: string\ntext_field: text\n"
            "key:\n- id\nversions:\n")
    for n in range(1, DATASET_VERSIONS + 1):
        text += (f"  v{n}:\n    rows: 100\n    splits:\n      train: 80\n      valid: 10\n      test: 10\n"
                 f"    batch: data/reviews/b{n:06d}-{hashlib.sha256(str(n).encode()).hexdigest()[:10]}.jsonl\n"
                 f"    md5: {hashlib.md5(str(n).encode()).hexdigest()}.dir\n    total_rows: {100 * n}\n"
                 f"    created_at: '2026-01-01T00:00:00Z'\n    author: Bench Bot <bench@example.com>\n")
    return text


def results_doc(n: int, alias: str, baseline: int) -> str:
    return json.dumps({
        "schema_version": 2, "created_at": "2026-01-02T00:00:00Z", "model": MODEL, "alias": alias,
        "dataset": {"ref": "reviews@v50", "split": "test", "rows": 100},
        "generation": {"max_new_tokens": 16},
        "candidate": {"ref": f"{MODEL}@v{n}", "version": f"v{n}", "format": "hf", "metrics": {"loss": 2.0}},
        "baseline": {"ref": f"{MODEL}@v{baseline}", "version": f"v{baseline}", "format": "hf",
                     "metrics": {"loss": 2.1}},
        "samples": [{"prompt": "The tour was", "candidate": " great.", "baseline": " fine."}] * 6,
        "environment": {"device": "cpu"}, "verdict": "pass"})


def build(root: Path, versions: int, moves: int) -> None:
    sh(root.parent, sys.executable, "-m", "gitops", "init", str(root), "--remote", str(root.parent / "remote"))
    sh(root, sys.executable, "-m", "gitops", "model", "create", MODEL, "--protect", "production=@acme/mlops")
    model_yaml = (root / f"registry/{MODEL}/model.yaml").read_text()
    fi = FastImport(root, parent=sh(root, "git", "rev-parse", "HEAD").strip())
    fi.commit("data: the reviews data set and its versions", {"registry/datasets/reviews.yaml": dataset_text()})
    gitignore = ""
    per_version = max(moves // versions, 1)
    done = 0
    for n in range(1, versions + 1):
        entry, pointer = version_entry(n)
        model_yaml += entry
        gitignore += f"/v{n}\n"
        fi.commit(f"register {MODEL} v{n}", {f"registry/{MODEL}/model.yaml": model_yaml,
                                             f"models/{MODEL}/v{n}.dvc": pointer,
                                             f"models/{MODEL}/.gitignore": gitignore})
        for k in range(per_version if n < versions else moves - done):
            alias = ALIASES[(done + k) % len(ALIASES)]
            target = max(1, n - (done + k) % 7)
            pr = done + k + 1
            subject = (f"Merge pull request #{pr} from acme/promote-{alias}" if (done + k) % 10 == 0
                       else f"alias {MODEL} {alias}: -> v{target}")
            fi.commit(subject, {f"registry/{MODEL}/aliases/{alias}.yaml": f"version: v{target}\nnote: move {pr}\n"})
        done += per_version if n < versions else moves - done
    docs = {f"results/{i}/results.json": results_doc(versions - i * 7, ALIASES[i % 5], versions - i * 7 - 1)
            for i in range(20)}
    fi.commit("evaluation results", docs)
    fi.close()
    sh(root, "git", "reset", "-q", "--hard", "main")
    # fast-import leaves long delta chains (every model.yaml a delta of the one before); a clone
    # receives a pack the server repacked, so repack once, as it would (not timed).
    sh(root, "git", "repack", "-q", "-a", "-d", "-f")


def run_site(root: Path, out: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the process and its git children) and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gitops", "site", "--out", str(out)], cwd=root, capture_output=True,
                          text=True, env=ENV)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"gitops site failed: {proc.stderr[-800:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, proc.stdout.strip().split(" in ", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--moves", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-site-"))
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        root, out = work / "repo", work / "site"
        t0 = time.perf_counter()
        build(root, args.versions, args.moves)
        print(f"built the repository ({args.versions:,} versions, {args.moves:,} alias moves, "
              f"{int(sh(root, 'git', 'rev-list', '--count', 'HEAD')):,} commits) in {time.perf_counter() - t0:.1f} s")
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        subprocess.run([sys.executable, "-m", "gitops", "show"], cwd=root, capture_output=True, env=ENV)  # compile
        shutil.rmtree(root / ".git" / "gitops" / "cache", ignore_errors=True)  # a fresh clone: no parse cache
        cold, cold_cpu, said = run_site(root, out)
        print(f"cold        {cold:6.2f} s wall, {cold_cpu:5.2f} s CPU: {said}")
        warm, warm_cpu, said = run_site(root, out)
        print(f"unchanged   {warm:6.2f} s wall, {warm_cpu:5.2f} s CPU: {said}")
        entry, pointer = version_entry(args.versions + 1)
        model = root / f"registry/{MODEL}/model.yaml"
        model.write_text(model.read_text() + entry)
        (root / f"models/{MODEL}/v{args.versions + 1}.dvc").write_text(pointer)
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-q", "-m", f"register {MODEL} v{args.versions + 1}")
        again, again_cpu, said = run_site(root, out)
        print(f"+1 version  {again:6.2f} s wall, {again_cpu:5.2f} s CPU: {said}")
        pages = list(out.rglob("*.html"))
        biggest = max(pages, key=lambda p: p.stat().st_size)
        total = sum(p.stat().st_size for p in pages)
        print(f"{len(pages):,} pages, {total / 2**20:.1f} MiB in all; largest {biggest.relative_to(out)} "
              f"{biggest.stat().st_size / 1024:,.0f} KiB")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        meets = cold <= 10 and biggest.stat().st_size <= 1 << 20
        print(f"\ntarget: {args.versions:,} versions and {args.moves:,} alias moves rendered in <= 10 s, no page over "
              f"1 MiB -> {'meets' if meets else 'MISSES'} (cold {cold:.2f} s wall / {cold_cpu:.2f} s CPU, nothing "
              f"changed {warm:.2f} s, after one new version {again:.2f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
