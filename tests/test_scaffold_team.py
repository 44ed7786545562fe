"""What `gitops init` scaffolds for a team: the toolkit pin every workflow installs (and `gitops check`
validates), train.yaml with its first base, the deploy hook, and a remote a clone can reach."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitops.core import toolkit
from tests.conftest import run_gitops

WHEEL = "wheels/gitops_registry-0.3.1-py3-none-any.whl"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scaffold") / "my-models"
    res = run_gitops("init", str(root), "--github-repo", "acme/my-models", "--deploy-hook",
                     "https://serving.acme.dev/hooks/deploy")
    assert res.exit_code == 0, res.stderr
    return root


def test_init_pins_the_toolkit_it_ran_with_and_check_accepts_it(scaffolded: Path) -> None:
    from importlib import metadata

    lines = (scaffolded / toolkit.REQUIREMENTS_FILE).read_text().splitlines()
    assert lines[-1] == f"gitops-registry=={metadata.version('gitops-registry')}"  # an editable install: its version
    assert all(line.startswith("#") for line in lines[:-1])
    res = run_gitops("check", "-C", str(scaffolded))
    assert res.exit_code == 0 and "The registry is valid." in res.stdout, res.stderr
    tracked = subprocess.run(["git", "ls-files"], cwd=scaffolded, capture_output=True, text=True).stdout.split()
    assert {toolkit.REQUIREMENTS_FILE, "train.yaml", "gitops.yaml"} <= set(tracked)


@pytest.mark.parametrize("line", [
    "gitops-registry==0.3.1", "gitops_registry == 0.3.1", f"gitops-registry @ git+https://github.com/acme/gitops@{SHA}",
    "gitops-registry @ https://files.acme.dev/gitops_registry-0.3.1-py3-none-any.whl", f"./{WHEEL}"])
def test_every_way_a_team_points_the_pin_is_accepted(scaffolded: Path, line: str) -> None:
    (scaffolded / "wheels").mkdir(exist_ok=True)
    (scaffolded / WHEEL).write_bytes(b"a wheel")
    text = "--index-url https://pypi.acme.dev/simple\n" + line + "  # pinned\n"
    assert toolkit.parse(text, root=scaffolded) == (line, [])


@pytest.mark.parametrize("text, problem", [
    ("gitops-registry>=0.3\n", "2: 'gitops-registry>=0.3' is not a pinned requirement"),
    ("gitops-registry[ml]==0.3.1\n", "2: the requirement asks for extras [ml]: write it without them"),
    ("gitops-registry @ git+https://github.com/acme/gitops@main\n", "must end in @ and a full 40-character commit"),
    ("torch==2.13.0\n", "2: the requirement names 'torch', not gitops-registry"),
    ("gitops-registry==0.3.1\ngitops-registry==0.3.2\n", "3: a second requirement: the file names gitops once"),
    ("-e .\n", "2: pip option '-e' is not allowed here"),
    ("-r more.txt\ngitops-registry==0.3.1\n", "2: pip option '-r' is not allowed here"),
    ("./wheels/gitops_registry-9.9-py3-none-any.whl\n",
     "2: the wheel wheels/gitops_registry-9.9-py3-none-any.whl is not in the repository"),
    ("../elsewhere/gitops_registry-1.0-py3-none-any.whl\n", "must stay inside the repository"),
    (".\n", "2: '.' installs this repository, which is not the gitops toolkit"),
    ("# nothing but comments\n", "names no requirement (e.g. gitops-registry=="),
])
def test_a_pin_ci_cannot_install_reproducibly_is_one_line_of_gitops_check(scaffolded: Path, text: str,
                                                                           problem: str) -> None:
    path = scaffolded / toolkit.REQUIREMENTS_FILE
    good = path.read_text()
    path.write_text("# the toolkit\n" + text)
    try:
        res = run_gitops("check", "-C", str(scaffolded))
    finally:
        path.write_text(good)
    assert res.exit_code == 1, res.stdout
    assert res.stderr.count("\n") == 2 and toolkit.REQUIREMENTS_FILE in res.stderr and problem in res.stderr, \
        res.stderr


def test_a_missing_pin_is_named_while_a_workflow_installs_from_it(scaffolded: Path) -> None:
    path = scaffolded / toolkit.REQUIREMENTS_FILE
    good = path.read_text()
    path.unlink()
    try:
        res = run_gitops("check", "-C", str(scaffolded))
    finally:
        path.write_text(good)
    assert res.exit_code == 1
    assert f"{toolkit.REQUIREMENTS_FILE}: is missing (or not a regular file), and convert.yml, deploy.yml" in res.stderr


def test_this_repository_pins_itself() -> None:
    """The toolkit's own repository installs its own code ('.'), as its base commit has it."""
    root = Path(__file__).resolve().parents[1]
    assert toolkit.parse((root / toolkit.REQUIREMENTS_FILE).read_text(), root=root) == (".", [])


def test_train_yaml_names_the_first_base_and_is_a_valid_config(scaffolded: Path) -> None:
    from gitops.train.train_config import read

    text = (scaffolded / "train.yaml").read_text()
    assert "gitops register-base smollm2 --name review-autocomplete" in text
    assert "gitops alias set review-autocomplete production v1" in text
    cfg = read(scaffolded / "train.yaml", [])
    assert (cfg.base_model, cfg.dataset, cfg.output_model) == ("review-autocomplete@production", "reviews@latest",
                                                               "review-autocomplete")


def test_the_deploy_hook_is_written_for_production(scaffolded: Path) -> None:
    from gitops.core import settings

    cfg = settings.read(scaffolded)
    (hook,) = cfg.deploy.hooks
    assert (hook.name, hook.url, hook.aliases, hook.secret_env) == (
        "serving", "https://serving.acme.dev/hooks/deploy", ["production"], "GITOPS_DEPLOY_SECRET")
    assert cfg.repo == "acme/my-models"


@pytest.mark.parametrize("args, message", [
    (("--deploy-hook", "ftp://serving"), "--deploy-hook: 'ftp://serving/...' must be an http:// or https:// URL"),
    (("--toolkit", "gitops-registry>=0.1"), "--toolkit: 'gitops-registry>=0.1' is not a pinned requirement"),
    (("--github-repo", "acme"), "--github-repo 'acme' must look like OWNER/NAME"),
    (("--remote", "s4://bucket/x"), "has a scheme DVC does not support ('s4://'"),
])
def test_init_refuses_bad_options_before_anything_is_made(tmp_path: Path, args: tuple, message: str) -> None:
    res = run_gitops("init", str(tmp_path / "repo"), *args)
    assert res.exit_code == 1 and message in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and not (tmp_path / "repo").exists()
    assert not (tmp_path / "repo-dvc-storage").exists()


def test_a_relative_remote_stays_relative_and_an_explicit_pin_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = f"gitops-registry @ git+https://github.com/acme/gitops@{SHA}"
    res = run_gitops("init", "repo", "--remote", "shared/store", "--toolkit", line)
    assert res.exit_code == 0, res.stderr
    assert "DVC remote: ../shared/store" in res.stdout and (tmp_path / "shared" / "store").is_dir()
    assert "url = ../../shared/store" in (tmp_path / "repo" / ".dvc" / "config").read_text()
    assert (tmp_path / "repo" / toolkit.REQUIREMENTS_FILE).read_text().splitlines()[-1] == line
