"""The workflows' "Install gitops" step as the act tests run it, with and without pip's conflict scan.

Builds the venv the setup-python stand-in builds (tests/act-actions/setup-python: a venv of this
interpreter over its site-packages, with a gitops-registry dist-info), then times the workflow's
own command, ``python -m pip install gitops-registry``, as a fresh process, median of N runs:

- ``PIP_NO_INDEX=1`` alone: pip finds the package satisfied, then scans every distribution of the
  test environment for conflicts (hundreds of packages: a fresh setup-python has a handful);
- what ``tests/act_helpers.py`` sets for every act run (``offline_environ()``): no index, no
  find-links, no conflict scan.

Every act run of registry-check.yml, deploy.yml and evaluate.yml pays this once per job.

    python bench/act_install.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.act_helpers import offline_environ  # noqa: E402

STAND_IN = ROOT / "tests" / "act-actions" / "setup-python" / "action.yml"


def stand_in_venv(runner_temp: Path) -> Path:
    """Run the stand-in's own shell step; return the venv's bin directory."""
    import yaml

    script = yaml.safe_load(STAND_IN.read_text())["runs"]["steps"][0]["run"]
    github_path = runner_temp / "github_path"
    env = {**os.environ, **offline_environ(), "RUNNER_TEMP": str(runner_temp), "GITHUB_PATH": str(github_path),
           "GITOPS_SOURCE": str(ROOT)}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, check=True)
    return Path(github_path.read_text().strip())


def timed(bin_dir: Path, env: dict[str, str], runs: int) -> float:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "gitops-registry"], env=env,
                       check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = stand_in_venv(Path(tmp))
        base = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        scan = timed(bin_dir, {**base, "PIP_NO_INDEX": "1"}, args.runs)
        offline = timed(bin_dir, {**base, **offline_environ()}, args.runs)
    print(f"pip install gitops-registry in the stand-in venv (median of {args.runs}):")
    print(f"  PIP_NO_INDEX=1, conflict scan on   {scan:6.2f} s")
    print(f"  offline_environ() (no scan)        {offline:6.2f} s   ({scan / offline:.1f}x faster)")


if __name__ == "__main__":
    main()
