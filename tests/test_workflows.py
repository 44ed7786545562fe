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
NAMES = ["convert.yml", "deploy.yml", "evaluate.yml", "pages.yml", "registry-check.yml", "train.yml"]
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
                         'gitops report results/*/results.json --post --pr "$PR"'],
        "train.yml": ["gitops train train.yaml --alias staging --pr", "trainer.learning_rate=$LEARNING_RATE"],
        "convert.yml": ['gitops convert "$MODEL@staging" --to ct2 --quantization int8',
                        'gitops promote "$MODEL@latest" --to staging-ct2 --pr'],
        "deploy.yml": ['gitops deploy --base "$BEFORE" --head "$HEAD_SHA"'],
        "pages.yml": ['gitops site --out "$RUNNER_TEMP/site"'],
    }
    for name, snippets in expect.items():
        text = (SCAFFOLD / name).read_text()
        for snippet in snippets:
            assert snippet in text, f"{name}: {snippet}"
    deploy = load(SCAFFOLD / "deploy.yml")
    assert deploy["jobs"]["deploy"]["environment"] == "production"
    env = deploy["jobs"]["deploy"]["steps"][-1]["env"]
    assert env["BEFORE"] == "${{ github.event.before }}" and env["HEAD_SHA"] == "${{ github.sha }}"
    pages = load(SCAFFOLD / "pages.yml")
    assert pages["on"]["push"] == {"branches": ["main"]}
    assert pages["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert pages["jobs"]["build"]["steps"][0]["with"]["fetch-depth"] == 0  # the timelines need the history
    assert pages["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert pages["jobs"]["deploy"]["environment"]["name"] == "github-pages"
    writers = {(name, job_id) for name, _, job_id, job in _jobs()
               if {"pages", "id-token"} & set(job["permissions"])}
    assert writers == {("pages.yml", "deploy")}, "only the Pages deploy job may publish or ask for an OIDC token"
    evaluate = load(SCAFFOLD / "evaluate.yml")["jobs"]
    assert evaluate["eval"]["runs-on"] == ["self-hosted", "gpu", "ephemeral"]
    assert evaluate["report"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert evaluate["eval"]["permissions"] == {"contents": "read"}


def _jobs():
    for name in NAMES:
        doc = load(SCAFFOLD / name)
        for job_id, job in doc["jobs"].items():
            yield name, doc, job_id, job


def test_jobs_holding_write_credentials_never_share_a_runner_with_pull_request_code():
    """Issue 9, item 5: train and convert push with a write token; eval runs a pull request's code.
    On self-hosted runners they ask for label sets that exclude each other (a runner takes any job
    whose labels it all has), matching ``runners`` in gitops.yaml (this repository's and the default)."""
    from gitops.core import settings

    trusted, untrusted = set(), set()
    for name, doc, job_id, job in _jobs():
        labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
        if "self-hosted" not in labels:
            continue
        writes = "write" in job["permissions"].values() or "secrets.GITOPS_PR_TOKEN" in json.dumps(job)
        pr_code = "pull_request" in doc["on"]
        assert writes != pr_code, f"{name} {job_id}: a job either holds write credentials or runs PR code"
        (trusted if writes else untrusted).add(tuple(labels))
    assert trusted == {("self-hosted", "gpu", "trusted")} and untrusted == {("self-hosted", "gpu", "ephemeral")}
    for cfg in (settings.read(ROOT), settings.Settings()):
        assert (tuple(cfg.trusted_labels), tuple(cfg.gpu_labels)) == (*trusted, *untrusted)


def _runners(text: str):
    from gitops import yamlio
    from gitops.core import settings
    from gitops.validation import Problems

    p = Problems()
    return settings.parse(yamlio.loads(text, "gitops.yaml"), "gitops.yaml", p), list(p)


@pytest.mark.parametrize("text", [
    "runners:\n  gpu: [self-hosted, gpu]\n  trusted: [self-hosted, gpu]\n",  # the same runner serves both
    "runners:\n  gpu: [self-hosted, gpu]\n",  # a trusted runner (default labels) takes the PR jobs
    "runners:\n  trusted: [self-hosted, gpu]\n",  # every trusted job fits the ephemeral runner
    "runners:\n  gpu: [self-hosted, gpu, trusted, ephemeral]\n",  # PR code on a trusted runner
])
def test_runner_label_sets_that_would_share_a_runner_are_refused(text):
    """A runner takes any job whose labels it all has: if one set holds the other, a job holding
    write credentials could land where pull request code runs (or the reverse)."""
    _, problems = _runners(text)
    assert len(problems) == 1 and "must each have a label the other lacks" in problems[0], problems
    assert problems[0].startswith("gitops.yaml:"), problems


def test_runner_labels_parse_and_bad_shapes_are_one_sentence():
    cfg, problems = _runners("runners:\n  gpu: [self-hosted, a100, pr]\n  trusted: [self-hosted, a100, deploy]\n")
    assert problems == [] and (cfg.gpu_labels, cfg.trusted_labels) == (
        ["self-hosted", "a100", "pr"], ["self-hosted", "a100", "deploy"])
    for bad in ("runners:\n  cpu: [x]\n", "runners: [gpu]\n", "runners:\n  gpu: self-hosted\n",
                "runners:\n  gpu: [{a: 1}]\n"):
        _, problems = _runners(bad)
        assert len(problems) == 1 and "runners must be a mapping like" in problems[0], (bad, problems)


REQUIREMENTS = "-r .github/gitops-requirements.txt"


def _installs():
    """(workflow, job, step, the pip install arguments) of every step that installs gitops."""
    for name, doc, job_id, job in _jobs():
        for step in job["steps"]:
            for args in re.findall(r"pip install (.+)", step.get("run", "")):
                yield name, doc, job_id, step, args.strip()


def test_every_workflow_installs_the_pinned_toolkit_and_never_imports_the_checkout():
    """Issue 18, item 3: every job installs gitops from .github/gitops-requirements.txt (the jobs
    that train, convert or evaluate add [ml] on the same command), never a version written into the
    workflow; issue 9, item 4: every `python -m` runs isolated (`-I`), so a pip/ or gitops/ at the
    root of a pull request's checkout is never imported."""
    installs = list(_installs())
    # every job installs, but Pages' deploy job, which publishes the artifact the build job made and runs no gitops
    assert {(n, j) for n, _, j, _, _ in installs} == {(n, j) for n, _, j, _ in _jobs()} - {("pages.yml", "deploy")}
    for name, _doc, job_id, _step, args in installs:
        ml = "gpu" in json.dumps(_job(name, job_id)["runs-on"])
        assert args == (f'{REQUIREMENTS} "gitops-registry[ml]"' if ml else REQUIREMENTS), (name, job_id, args)
    for path in sorted(SCAFFOLD.glob("*.yml")):
        text = path.read_text()
        assert not re.search(r"gitops[-_]registry(\[ml\])?[=<>~]", text), f"{path.name}: a version in the workflow"
        assert "GITOPS_INSTALL" not in text and "vars." not in text, path.name
        assert not re.search(r"python3? -m ", text), f"{path.name}: python -m without -I"
        assert "PYTHONPATH" not in text and "GITHUB_WORKSPACE\" >> \"$GITHUB_PATH" not in text


def _job(name: str, job_id: str) -> dict:
    return load(SCAFFOLD / name)["jobs"][job_id]


def test_pull_requests_are_judged_by_the_toolkit_their_base_branch_pins():
    """A pull request may change .github/gitops-requirements.txt (or a wheel it names): every job a
    pull request starts installs the pin as the BASE commit has it, extracted outside the checkout;
    the jobs of a push to main install the checkout's own (it passed review)."""
    for name, doc, job_id, step, _args in _installs():
        if "pull_request" in doc["on"]:
            assert step["working-directory"] == "${{ runner.temp }}", (name, job_id)
            assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}", (name, job_id)
            run = step["run"]
            assert run.index('git -C "$GITHUB_WORKSPACE" archive "$BASE_SHA" | tar -x -C gitops-base') < \
                run.index("cd gitops-base && ") < run.index("pip install"), (name, job_id)
        else:
            assert "working-directory" not in step and "archive" not in step["run"], (name, job_id)
        checkout = next(s for s in _job(name, job_id)["steps"] if s.get("uses", "").startswith("actions/checkout@"))
        if "pull_request" in doc["on"]:
            assert checkout["with"]["fetch-depth"] == 0, f"{name} {job_id}: the base commit must be fetched"


def test_the_required_check_always_reports():
    """Issue 9, items 4 and 13: registry-check has no paths filter (a required check a filter skips
    stays pending forever)."""
    doc = load(SCAFFOLD / "registry-check.yml")
    for event in ("pull_request", "pull_request_review"):
        assert event in doc["on"]
        assert not set(doc["on"][event] or {}) & {"paths", "paths-ignore", "branches-ignore"}, event


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
