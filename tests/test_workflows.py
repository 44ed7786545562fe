"""The workflow files: audited (zizmor, GitHub's schema, our own policy) and identical in both places."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCAFFOLD = ROOT / "gitops" / "scaffold" / "workflows"
OWN = ROOT / ".github" / "workflows"
NAMES = ["convert.yml", "deploy.yml", "evaluate.yml", "registry-check.yml", "train.yml"]
FILES = [SCAFFOLD / n for n in NAMES] + [OWN / n for n in NAMES]
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def test_both_directories_hold_the_same_files():
    assert sorted(p.name for p in SCAFFOLD.glob("*.yml")) == NAMES
    assert sorted(p.name for p in OWN.glob("*.yml")) == NAMES
    for name in NAMES:
        assert (SCAFFOLD / name).read_bytes() == (OWN / name).read_bytes(), f"{name} differs: copy it over"


@pytest.mark.parametrize("persona", ["regular", "pedantic"])
def test_zizmor_finds_nothing(persona):
    proc = subprocess.run(["zizmor", "--offline", f"--persona={persona}", "--format=json", *map(str, FILES)],
                          capture_output=True, text=True, timeout=120)
    findings = json.loads(proc.stdout or "[]")
    summary = [f"{f['ident']}: {f['locations'][0]['symbolic']['key']}" for f in findings]
    assert findings == [], summary
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_github_workflow_schema():
    proc = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", NAMES)
def test_security_defaults(name):
    text = (SCAFFOLD / name).read_text()
    doc = load(SCAFFOLD / name)
    assert doc["permissions"] == {}, "permissions: {} at the top; grant per job"
    assert "concurrency" in doc
    assert "pull_request_target" not in doc["on"]
    for job_id, job in doc["jobs"].items():
        assert "permissions" in job, f"{job_id}: least privilege per job"
        assert isinstance(job.get("timeout-minutes"), int), f"{job_id}: timeout-minutes"
        steps = job["steps"]
        for step in steps:
            if "uses" in step:
                line = next(ln.strip() for ln in text.splitlines() if f"uses: {step['uses']}" in ln)
                assert PINNED.match(line.split("uses: ", 1)[1]), f"{job_id}: pin {step['uses']} by SHA + # vX.Y.Z"
            if "run" in step:
                assert "${{" not in step["run"], f"{job_id}: pass expressions to run: through env:"
            if step.get("uses", "").startswith("actions/checkout@"):
                pushes = job["permissions"].get("contents") == "write"
                assert step["with"]["persist-credentials"] is pushes, f"{job_id}: persist-credentials"
        labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
        if "self-hosted" in labels and "pull_request" in doc["on"]:
            assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"], \
                f"{job_id}: a fork PR must never reach the self-hosted runner"


def test_each_workflow_calls_its_gitops_commands():
    expect = {
        "registry-check.yml": ['gitops check --base "origin/${BASE}"', 'gitops approvals --pr "$PR"'],
        "evaluate.yml": ['gitops diff "$BASE_SHA" "$GITHUB_SHA" --github-output', 'gitops eval "$MODEL@$VERSION"',
                         '--baseline "$MODEL@production" --baseline-rev "$BASE_SHA"',
                         'gitops report "$results" --post --pr "$PR"'],
        "train.yml": ["gitops train train.yaml", "trainer.learning_rate=$LEARNING_RATE", "dvc push",
                      'gitops diff "$BEFORE" HEAD --github-output', 'gitops promote "$REF" --to staging --pr'],
        "convert.yml": ['gitops convert "$MODEL@staging" --to ct2 --quantization int8',
                        'gitops promote "$MODEL@latest" --to staging-ct2 --pr'],
        "deploy.yml": ['gitops deploy --base "$BEFORE" --head "$HEAD_SHA"'],
    }
    for name, snippets in expect.items():
        text = (SCAFFOLD / name).read_text()
        for snippet in snippets:
            assert snippet in text, f"{name}: {snippet}"
    deploy = load(SCAFFOLD / "deploy.yml")
    assert deploy["jobs"]["deploy"]["environment"] == "production"
    env = deploy["jobs"]["deploy"]["steps"][-1]["env"]
    assert env["BEFORE"] == "${{ github.event.before }}" and env["HEAD_SHA"] == "${{ github.sha }}"
    evaluate = load(SCAFFOLD / "evaluate.yml")["jobs"]
    assert evaluate["eval"]["runs-on"] == ["self-hosted", "gpu"]
    assert evaluate["report"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert evaluate["eval"]["permissions"] == {"contents": "read"}


def test_no_logic_hidden_in_shell():
    """Steps call gitops; decisions live in gitops commands, not in inline scripts."""
    for path in sorted(SCAFFOLD.glob("*.yml")):
        for job_id, job in load(path)["jobs"].items():
            for step in job["steps"]:
                run = step.get("run", "")
                for banned in ("python -c", "python3 -c", "sed ", "awk ", "jq "):
                    assert banned not in run, f"{path.name} job {job_id}: {banned!r} in a run step"


def test_scaffold_ships_in_the_package():
    import importlib.resources

    files = importlib.resources.files("gitops") / "scaffold" / "workflows"
    assert sorted(p.name for p in files.iterdir() if p.name.endswith(".yml")) == NAMES
