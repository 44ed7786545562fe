"""Does an ingest cost what its batch costs, whatever the size of the data set, and every time?

Ingests N small batches (default 300 of 5 rows, a smoke run; the README's figure is ``--batches
3000``) into a fresh GitOps repository and prints the time of the 10th, 100th and N-th ingest (each
the median of a window of 5 around it, to damp noise on a shared machine) and the ratio N-th / 10th
(target: <= 1.5), then the tail over all N: p50, p99 and max, the slowest ingests by number, and
how many of them packed loose git objects (gitops' own bounded packing; git's automatic gc, which
used to run in the foreground of ingest #~1,000 for 16 s, is off in gitops' commands).

Load on a shared machine drifts over a run of minutes, so it then also measures side by side: it
alternates ingests into a second repository holding 10 batches and into the big one (``--pairs``
rounds) and prints the ratio of their medians, which drift cannot bias.

It calls the library verb ``gitops.api.ingest`` in one process, not the CLI, so that Python and DVC
start-up (about a second per command, constant) does not hide the growth being measured. Each ingest
gets a fresh Workspace, as each command does; the parse cache's memory layer lives for the process, as
it would in any long-running process (a new CLI process replays the cache from disk instead: ~3 ms
more at 1,000 versions).

    PYTHONPATH=. python bench/ingest_scaling.py [--batches 1000] [--rows 5]
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

from gitops import api
from gitops.adapters import git
from tests.data_fixtures import GIT_ENV, make_repo

COLUMNS = {"id": "string", "text": "string", "rating": "int"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300, help="number of ingests (>= 15; 3000 for the README)")
    parser.add_argument("--rows", type=int, default=5, help="rows per batch")
    parser.add_argument("--pairs", type=int, default=15, help="side-by-side rounds (small repo, big repo)")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        root = make_repo(Path(tmp) / "repo")
        api.create_dataset(api.Workspace(root), "reviews", COLUMNS, "text", ["id"])
        times = ingest_many(root, Path(tmp), args.batches, args.rows)
        report(times, args.batches, root)
        small = make_repo(Path(tmp) / "small")
        api.create_dataset(api.Workspace(small), "reviews", COLUMNS, "text", ["id"])
        ingest_many(small, Path(tmp), 10, args.rows, quiet=True)
        side_by_side(small, root, Path(tmp), args)
    return 0


def ingest_one(root: Path, src: Path, b: int, rows: int) -> float:
    """Time one ingest of a fresh batch numbered ``b``."""
    src.write_text("".join(json.dumps({"id": f"b{b}-{i}", "text": f"review {b} {i}", "rating": i % 5 + 1})
                           + "\n" for i in range(rows)))
    start = time.perf_counter()
    result = api.ingest(api.Workspace(root), [src], "reviews")
    elapsed = time.perf_counter() - start
    assert result.version is not None, result.message
    return elapsed


def ingest_many(root: Path, tmp: Path, batches: int, rows: int, quiet: bool = False) -> list[float]:
    times = []
    for b in range(batches):
        times.append(ingest_one(root, tmp / "batch.jsonl", b, rows))
        if (b + 1) % 100 == 0 and not quiet:
            print(f"  {b + 1} ingests, last {times[-1] * 1000:.0f} ms", file=sys.stderr)
    return times


def side_by_side(small: Path, big: Path, tmp: Path, args: argparse.Namespace) -> None:
    pairs: list[tuple[float, float]] = []
    for k in range(args.pairs):
        pairs.append((ingest_one(small, tmp / "s.jsonl", 10_000 + k, args.rows),
                      ingest_one(big, tmp / "b.jsonl", 10_000 + k, args.rows)))
    s = statistics.median(p[0] for p in pairs)
    b = statistics.median(p[1] for p in pairs)
    print(f"side by side, {args.pairs} alternating rounds: data set of ~10 batches {s * 1000:.1f} ms, "
          f"of ~{args.batches} batches {b * 1000:.1f} ms; ratio {b / s:.2f} "
          f"(target <= 1.5: {'met' if b / s <= 1.5 else 'NOT met'})")


def at(times: list[float], n: int) -> float:
    """Median of the ingests n-2 .. n+2 (1-based), clipped to the run."""
    window = times[max(0, n - 3): min(len(times), n + 2)]
    return statistics.median(window)


def report(times: list[float], batches: int, root: Path) -> None:
    marks = [m for m in (10, 100, batches) if m <= batches]
    print(f"ingest_scaling: {batches} ingests of small batches via gitops.api.ingest (library call, "
          f"no CLI start-up); each figure is the median of 5 ingests around it")
    for m in marks:
        print(f"  ingest #{m:>5}: {at(times, m) * 1000:7.1f} ms")
    ratio = at(times, batches) / at(times, 10)
    print(f"  ratio #{batches}/#10: {ratio:.2f}  (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    ordered = sorted(times)
    pct = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    slowest = sorted(range(len(times)), key=lambda i: -times[i])[:5]
    print(f"  tail over all {batches}: p50 {pct(0.5) * 1000:.0f} ms, p99 {pct(0.99) * 1000:.0f} ms, "
          f"max {ordered[-1] * 1000:.0f} ms (max/p50 {ordered[-1] / pct(0.5):.1f}x); slowest: "
          + ", ".join(f"#{i + 1} {times[i] * 1000:.0f} ms" for i in slowest))
    packs = git.run(root, "count-objects", "-v").split("\n")
    print(f"  git objects: {', '.join(line for line in packs if line.startswith(('count', 'in-pack', 'packs')))}")
    files = len(git.run(root, "ls-files").split())
    print(f"  repo: {files} tracked files, data/ holds {sum(1 for _ in (root / 'data').rglob('*') if _.is_file())}"
          f" files; total {sum(times):.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
