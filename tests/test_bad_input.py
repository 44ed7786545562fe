"""Bad input: one clear sentence naming the file/key/line, exit 1, and the repository left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git_state, run_gitops

MODEL = "review-autocomplete"


@pytest.fixture
def repo(gitops_repo: Path, weights) -> Path:
    assert run_gitops("model", "create", MODEL, cwd=gitops_repo).exit_code == 0
    assert run_gitops("register", MODEL, str(weights()), cwd=gitops_repo).exit_code == 0
    return gitops_repo


def assert_one_sentence(result, *needles: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def edit_model_yaml(repo: Path, transform) -> None:
    path = repo / f"registry/{MODEL}/model.yaml"
    path.write_text(transform(path.read_text()))


@pytest.mark.parametrize("transform, needles", [
    (lambda t: t + "  broken: [\n", ("model.yaml:", "not valid YAML")),
    (lambda t: t.replace("task:", "colour: blue\ntask:"), ("model.yaml:3", "unknown key 'colour'")),
    (lambda t: t.replace("  v1:", "  version1:"), ("model.yaml:", "version id 'version1' must look like v1")),
    (lambda t: t + t[t.index("  v1:"):], ("model.yaml:", "key 'v1' appears twice")),
    (lambda t: t.replace("path: models/review-autocomplete/v1", "path: ../../etc/passwd"),
     ("model.yaml:", "escapes the repository")),
    (lambda t: t.replace("format: hf", "format: onnx"), ("format 'onnx' is not one of",)),
])
def test_broken_model_yaml_is_named_with_its_line(repo: Path, transform, needles) -> None:
    edit_model_yaml(repo, transform)
    before = git_state(repo)
    result = run_gitops("show", cwd=repo)
    assert_one_sentence(result, f"registry/{MODEL}/model.yaml", *needles)
    assert git_state(repo) == before


def test_alias_named_like_a_version_is_refused(repo: Path) -> None:
    before = git_state(repo)
    assert_one_sentence(run_gitops("alias", "set", MODEL, "v2", "v1", cwd=repo), "shaped like a version id")
    assert git_state(repo) == before


def test_alias_to_a_missing_version_is_refused(repo: Path) -> None:
    before = git_state(repo)
    assert_one_sentence(run_gitops("alias", "set", MODEL, "staging", "v9", cwd=repo), "has no version v9")
    assert git_state(repo) == before
    alias_file = repo / f"registry/{MODEL}/aliases/staging.yaml"
    alias_file.parent.mkdir(parents=True, exist_ok=True)
    alias_file.write_text("version: v9\n")
    assert_one_sentence(run_gitops("show", cwd=repo), "aliases/staging.yaml", "points to v9, which does not exist")


def test_weights_directory_missing_or_empty(repo: Path, tmp_path: Path) -> None:
    before = git_state(repo)
    assert_one_sentence(run_gitops("register", MODEL, str(tmp_path / "nope"), cwd=repo), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_sentence(run_gitops("register", MODEL, str(tmp_path / "empty"), cwd=repo), "is empty")
    assert git_state(repo) == before


def test_outside_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert_one_sentence(run_gitops("show", cwd=tmp_path / "plain"), "not inside a git repository")


def test_dirty_work_tree_where_a_commit_is_needed(repo: Path, weights) -> None:
    (repo / "gitops.yaml").write_text((repo / "gitops.yaml").read_text() + "# local edit\n")
    before = git_state(repo)
    assert_one_sentence(run_gitops("alias", "set", MODEL, "staging", "v1", cwd=repo),
                        "uncommitted changes", "gitops.yaml")
    assert_one_sentence(run_gitops("register", MODEL, str(weights()), cwd=repo), "uncommitted changes")
    assert git_state(repo) == before
    assert not (repo / f"models/{MODEL}/v2").exists()


def test_unknown_model_and_bad_reference(repo: Path) -> None:
    assert_one_sentence(run_gitops("show", "nope", cwd=repo), "model 'nope' does not exist")
    assert_one_sentence(run_gitops("show", f"{MODEL}@", cwd=repo), "nothing after '@'")
    assert_one_sentence(run_gitops("show", f"{MODEL}@production", cwd=repo), "has no alias 'production'")


def test_a_failed_register_leaves_nothing_behind(repo: Path, weights) -> None:
    """A failure half-way through the copy (a dangling link among the weights) is rolled back."""
    src = weights()
    (src / "dangling.bin").symlink_to(src / "missing-target")
    before = git_state(repo)
    result = run_gitops("register", MODEL, str(src), cwd=repo)
    assert result.exit_code == 1, result.stderr
    assert git_state(repo) == before
    assert not (repo / f"models/{MODEL}/v2").exists()


def test_debug_shows_the_traceback(repo: Path) -> None:
    result = run_gitops("--debug", "show", "nope", cwd=repo)
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_usage_errors_exit_2(repo: Path) -> None:
    assert run_gitops("register", cwd=repo).exit_code == 2
