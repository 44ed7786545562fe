"""CLI latency on a large registry, side by side with gto (PyPI ``gto``, a git-tag model registry).

Builds, in a temporary directory:
- a gitops repo (``gitops init`` + ``gitops model create``) with 1,000 registered versions, one commit
  each (model.yaml appended + one ``.dvc`` pointer per version, what ``gitops register`` commits), and 20
  aliases moved 5 times each (100 more commits);
- a gto repo with 1,000 version tags (``m@v0.0.N``), one commit each, and 20 stages assigned.
Then times each command as a fresh process (what a user and a CI step pay), ``--runs`` times on each
side, the two tools' rounds interleaved (gitops, gto, gitops, gto ...) after one untimed run of each,
so load that drifts during the run falls on both alike; it prints the min and the median of each
side and the ratio of medians (and of mins). ``show (cold)`` is the first ``gitops show`` of a fresh
clone: the parse cache is deleted before each run, so model.yaml is parsed and validated from
scratch. The verdict is judged on that cold row (a warm cache only hides the parser), and the warm
row must meet the target too.

    python bench/cli_latency.py [--versions 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fastrepo import FastImport

MODEL = "review-autocomplete"


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def version_entry(n: int) -> tuple[str, str, str]:
    md5 = hashlib.md5(f"weights {n}".encode()).hexdigest() + ".dir"
    entry = (f"  v{n}:\n    format: {'hf' if n % 3 else 'ct2'}\n    path: models/{MODEL}/v{n}\n    md5: {md5}\n"
             + (f"    parent: v{n - 1}\n" if n > 1 else "")
             + f"    dataset: reviews@v{n}\n    created_at: '2026-01-01T00:00:00+00:00'\n"
             f"    author: Bench Bot <bench@example.com>\n    metrics:\n      eval_loss: {2 + n / 1000:.4f}\n")
    pointer = f"outs:\n- md5: {md5}\n  size: 1024\n  nfiles: 2\n  hash: md5\n  path: v{n}\n"
    return entry, pointer, md5


def build_gitops(root: Path, versions: int, aliases: int, moves: int) -> None:
    sh(root.parent, sys.executable, "-m", "gitops", "init", str(root), "--remote", str(root.parent / "remote"))
    sh(root, sys.executable, "-m", "gitops", "model", "create", MODEL, "--protect", "production=@acme/mlops")
    model_yaml = (root / f"registry/{MODEL}/model.yaml").read_text()
    fi = FastImport(root, parent=sh(root, "git", "rev-parse", "HEAD").strip())
    gitignore = ""
    for n in range(1, versions + 1):
        entry, pointer, _ = version_entry(n)
        model_yaml += entry
        gitignore += f"/v{n}\n"
        fi.commit(f"register {MODEL} v{n} (hf)", {f"registry/{MODEL}/model.yaml": model_yaml,
                                                  f"models/{MODEL}/v{n}.dvc": pointer,
                                                  f"models/{MODEL}/.gitignore": gitignore})
    names = ["production", "staging"] + [f"canary-{i}" for i in range(aliases - 2)]
    for move in range(moves):
        for i, name in enumerate(names):
            v = versions - (moves - move) * aliases + i
            fi.commit(f"alias {MODEL} {name}: -> v{v}", {f"registry/{MODEL}/aliases/{name}.yaml": f"version: v{v}\n"})
    fi.close()
    sh(root, "git", "reset", "-q", "--hard", "main")


def build_gto(root: Path, versions: int, stages: int) -> None:
    root.mkdir()
    sh(root, "git", "init", "-q", "-b", "main")
    fi = FastImport(root)
    for n in range(1, versions + 1):
        mark = fi.commit(f"model v{n}", {"model.txt": f"weights {n}\n"})
        fi.tag(f"{MODEL}@v0.0.{n}", mark, f"Registering artifact {MODEL} version v0.0.{n}")
        if n > versions - stages:
            stage = ["production", "staging"][n % 2] if n > versions - 2 else f"canary-{n}"
            fi.tag(f"{MODEL}#{stage}#1", mark, f"Assigning stage {stage} to artifact {MODEL} version v0.0.{n}")
    fi.close()
    sh(root, "git", "reset", "-q", "--hard", "main")


# Both tools run as installed packages do: with compiled bytecode (an installed gto has its .pyc files;
# PYTHONDONTWRITEBYTECODE would make gitops, run from a source tree, recompile on every start).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cwd: Path, args: list[str], before=None) -> float:  # untyped: an optional callable
    if before is not None:
        before()
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr[-500:]}")
    return elapsed


def interleaved(ours: tuple, theirs: tuple | None, runs: int) -> tuple[list[float], list[float]]:
    """``runs`` timings of each side, alternating (A B A B ...) after one untimed run of each (compile,
    warm the page cache); each side is (cwd, argv[, a callable run before each timed run])."""
    sides = [ours] + ([theirs] if theirs else [])
    for cwd, args, *_before in sides:
        subprocess.run(args, cwd=cwd, capture_output=True, env=ENV)
    samples: list[list[float]] = [[] for _ in sides]
    for _ in range(runs):
        for i, (cwd, args, *before) in enumerate(sides):
            samples[i].append(run_once(cwd, args, before[0] if before else None))
    return samples[0], samples[1] if theirs else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--aliases", type=int, default=20)
    parser.add_argument("--moves", type=int, default=5, help="moves per alias (history length)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command on each side (default 5)")
    args = parser.parse_args()
    gitops = shutil.which("gitops")
    gitops_cmd = [gitops] if gitops else [sys.executable, "-m", "gitops"]
    gto_cmd = [shutil.which("gto") or "gto"]
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-"))
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("GTO_NO_ANALYTICS", "1")
    try:
        t0 = time.perf_counter()
        build_gitops(work / "gitops-repo", args.versions, args.aliases, args.moves)
        build_gto(work / "gto-repo", args.versions, args.aliases)
        print(f"built both repositories ({args.versions} versions, {args.aliases} aliases/stages) "
              f"in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}\n")
        g, t = work / "gitops-repo", work / "gto-repo"
        fresh_clone = lambda: shutil.rmtree(g / ".git" / "gitops" / "cache", ignore_errors=True)  # noqa: E731
        rows = [
            ("show", *interleaved((g, [*gitops_cmd, "show"]), (t, [*gto_cmd, "show"]), args.runs)),
            ("show (cold)", *interleaved((g, [*gitops_cmd, "show"], fresh_clone), (t, [*gto_cmd, "show"]), args.runs)),
            ("show MODEL", *interleaved((g, [*gitops_cmd, "show", MODEL]), (t, [*gto_cmd, "show", MODEL]), args.runs)),
            ("history MODEL", *interleaved((g, [*gitops_cmd, "history", MODEL]), (t, [*gto_cmd, "history", MODEL]),
                                           args.runs)),
            ("check", *interleaved((g, [*gitops_cmd, "check"]), None, args.runs)),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.runs} timed runs of each command on each side, interleaved; load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<16}{'gitops min':>11}{'median':>9}{'gto min':>10}{'median':>9}{'ratio (median)':>16}"
          f"{'(min)':>8}")
    for name, ours, theirs in rows:
        om, tm = statistics.median(ours), statistics.median(theirs) if theirs else float("nan")
        ratio = f"{tm / om:.0f}x" if theirs else "-"
        ratio_min = f"{min(theirs) / min(ours):.0f}x" if theirs else "-"
        print(f"{name:<16}{min(ours):>11.3f}{om:>9.3f}{min(theirs) if theirs else float('nan'):>10.2f}{tm:>9.2f}"
              f"{ratio:>16}{ratio_min:>8}")
    warm, cold_row = rows[0], rows[1]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    meets = all(med(r[1]) <= 0.3 and med(r[2]) / med(r[1]) >= 40 for r in (cold_row, warm))
    print(f"\ntarget: the first gitops show of a fresh clone (cold) <= 0.3 s and >= 40x faster than gto show, "
          f"warm as well (medians) -> {'meets' if meets else 'MISSES'} (cold {med(cold_row[1]):.3f} s, "
          f"{med(cold_row[2]) / med(cold_row[1]):.0f}x; warm {med(warm[1]):.3f} s, {med(warm[2]) / med(warm[1]):.0f}x)")


if __name__ == "__main__":
    main()
