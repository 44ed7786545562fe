"""Run a real workflow file with ``act`` in host mode: no Docker, no network.

Every job runs as a shell on this machine (``-P label=-self-hosted``) in a copy of ``workdir``
(a git repository: act copies the work tree, ``.git`` included, and skips ``actions/checkout``).
Remote actions cannot be downloaded, so each pinned ``uses: owner/repo@sha`` is mapped to a
stand-in under ``tests/act-actions/<repo>``. What act learned us is written up in
docs/workflows.md, "Running the workflows locally with act".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent  # the gitops checkout under test
STAND_INS = Path(__file__).resolve().parent / "act-actions"
USES_RE = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+)/([\w.-]+)@([0-9a-f]{40})", re.M)
# Labels our workflows run on; each becomes "this machine".
PLATFORMS = ("ubuntu-latest", "self-hosted", "gpu", "trusted", "ephemeral")


@dataclass
class ActResult:
    returncode: int
    output: str  # the job/step log as text, one line per message
    jobs_ran: set[str] = field(default_factory=set)  # job ids that ran (success or failure)
    jobs_skipped: set[str] = field(default_factory=set)  # job ids skipped by their `if:`
    jobs_failed: set[str] = field(default_factory=set)
    # (seconds since act started, job id or "", message) for every JSON log line, as it arrived
    timeline: list[tuple[float, str, str]] = field(default_factory=list)

    def job_span(self, job_id: str) -> tuple[float, float] | None:
        """When ``job_id``'s first and last log lines arrived (seconds since act started)."""
        times = [t for t, job, _ in self.timeline if job == job_id]
        return (min(times), max(times)) if times else None


def offline_environ() -> dict[str, str]:
    """What every act run gets so that no workflow step can download, and the setup-python
    stand-in builds its venv from the test interpreter (``tests/act-actions/setup-python``).

    ``PIP_NO_INDEX`` and an empty ``PIP_FIND_LINKS`` (overriding any pip.conf) leave pip no place
    to fetch from: a step that needs anything not installed fails, it does not download.
    ``PIP_NO_WARN_CONFLICTS=0`` skips pip's after-install conflict scan over every distribution of
    the test environment (~4 s of CPU per ``pip install`` here, hundreds of packages a fresh
    setup-python would not have); pip reads a ``--no-*`` flag's variable inverted, so 0 means
    "do not warn". The install itself is still real: it must find gitops-registry satisfied.
    """
    site_dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_NO_WARN_CONFLICTS": "0",
            "GITOPS_TEST_PYTHON": sys.executable, "GITOPS_TEST_SITE": os.pathsep.join(site_dirs)}


def act_available() -> bool:
    return shutil.which("act") is not None


def local_repositories(workflow: Path) -> list[str]:
    """``--local-repository`` mappings for each pinned remote action that has a stand-in."""
    mappings = []
    for owner, repo, sha in sorted(set(USES_RE.findall(workflow.read_text()))):
        stand_in = STAND_INS / repo
        if stand_in.is_dir():
            mappings += ["--local-repository", f"{owner}/{repo}@{sha}={stand_in}"]
    return mappings


def preinstalled_gitops(scratch: Path) -> Path:
    """A bin directory with a ``gitops`` that runs this checkout with the test interpreter: the GPU
    jobs' venv (over the ``python3`` on ``PATH``) finds the pin already satisfied and installs no
    ``gitops`` script of its own, so this one runs."""
    bin_dir = scratch / "bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "gitops"
    launcher.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(SOURCE)!r})\n"
                        "from gitops.cli import main\nmain()\n")
    launcher.chmod(0o755)
    return bin_dir


def run_act(workflow: Path, event_name: str, event_payload: dict, *, env: dict, secrets: dict, workdir: Path,
            job: str | None = None, variables: dict | None = None, timeout_s: float = 120,
            scratch: Path | None = None) -> ActResult:
    """Run ``workflow`` for one event in ``workdir`` (a git repo with an ``origin`` remote on GitHub,
    which is where act takes ``github.repository`` from) and report which jobs ran or were skipped.

    ``env`` is passed with ``--env`` (e.g. ``GITHUB_API_URL`` to point gitops at an emulator);
    ``secrets`` with ``-s``; ``variables`` (the ``vars`` context) with ``--var``. ``scratch`` holds
    act's copy of the work tree, the event and the artifacts (default: beside ``workdir``); give
    each run its own when several runs share one ``workdir``.

    Every step imports gitops from this checkout (``PYTHONPATH``), whatever ``gitops`` is installed.
    """
    scratch = scratch or workdir.parent / f".act-{workdir.name}"
    scratch.mkdir(parents=True, exist_ok=True)
    event_file = scratch / "event.json"
    event_file.write_text(json.dumps(event_payload))
    args = ["act", event_name, "-e", str(event_file), "-W", str(workflow), "--json", "-v",
            "--container-daemon-socket", "-"]
    for label in PLATFORMS:
        args += ["-P", f"{label}=-self-hosted"]
    args += local_repositories(workflow)
    base_env = {"GITOPS_SOURCE": str(SOURCE), "PYTHONPATH": str(SOURCE), "ACT_ARTIFACT_DIR": str(scratch / "artifacts"),
                "PATH": f"{preinstalled_gitops(scratch)}:{os.environ['PATH']}", **offline_environ()}
    for key, value in {**base_env, **env}.items():
        args += ["--env", f"{key}={value}"]
    for key, value in secrets.items():
        args += ["-s", f"{key}={value}"]
    for key, value in (variables or {}).items():
        args += ["--var", f"{key}={value}"]
    if job:
        args += ["-j", job]
    # act keeps its copies of the work tree under $XDG_CACHE_HOME/act: one per test.
    proc_env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache")}
    # Streamed, so each line gets the time it arrived (bench/pr_loop.py breaks a run down by job).
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=proc_env)
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        stamped = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stdout]  # type: ignore[union-attr]
        returncode = proc.wait()
    finally:
        killer.cancel()
    if returncode < 0:
        raise subprocess.TimeoutExpired(args, timeout_s)
    return _parse(returncode, stamped)


def _parse(returncode: int, stamped: list[tuple[float, str]]) -> ActResult:
    result = ActResult(returncode=returncode, output="")
    lines = []
    for at, line in stamped:
        try:
            entry = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if not isinstance(entry, dict):
            continue
        job_id, outcome = entry.get("jobID"), entry.get("jobResult")
        result.timeline.append((at, job_id or "", str(entry.get("msg", ""))))
        if job_id and outcome == "skipped":
            result.jobs_skipped.add(job_id)
        elif job_id and outcome:
            result.jobs_ran.add(job_id)
            if outcome != "success":
                result.jobs_failed.add(job_id)
        # debug lines carry act's whole environment dump: keep them out of the readable log
        if entry.get("level") != "debug" or outcome:
            prefix = f"[{entry.get('job', '')}] " if entry.get("job") else ""
            lines.append(prefix + str(entry.get("msg", "")).rstrip("\n"))
    result.output = "\n".join(lines)
    return result


def pull_request_event(number: int, head_repo: str, base_repo: str = "acme/models", *,
                       base_sha: str = "", head_sha: str = "", base_ref: str = "main") -> dict:
    """A minimal ``pull_request`` payload; ``head_repo != base_repo`` makes it a fork PR."""
    return {
        "action": "synchronize", "number": number,
        "pull_request": {"number": number,
                         "head": {"repo": {"full_name": head_repo}, "sha": head_sha, "ref": "feature"},
                         "base": {"repo": {"full_name": base_repo}, "sha": base_sha, "ref": base_ref}},
        "repository": {"full_name": base_repo, "name": base_repo.split("/")[1],
                       "owner": {"login": base_repo.split("/")[0]}},
    }
