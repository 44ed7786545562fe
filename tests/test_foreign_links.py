"""Config files that link outside the repository are refused unread (issue 17, item 8).

A pull request can commit a symbolic link in place of any file: ``gitops.yaml``, a ``.dvc``
pointer, ``.dvc/config``, a train or prompt config, a classification block. CI and serving hosts
then read it, and the readers followed the link and echoed the target's lines back as "unknown
key 'aws_secret_access_key'" and the like, into a public CI log. Every config reader now refuses
a file that leads, through a link, out of the work tree, in one sentence that quotes nothing of
the target; a link to another file of the repository, or a user's own link outside any
repository, still reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import git_state, run_gitops
from tests.hostile_fixtures import MODEL, copy_repo, isolated, make_hostile_repo

SECRET = "AKIAFOREIGNSECRET0042"
FOREIGN_YAML = f"aws_secret_access_key: {SECRET}\nroot_password_hash: {SECRET}x\n"
FOREIGN_INI = f"[default]\naws_secret_access_key = {SECRET}\nnot a section line {SECRET}\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("links")
    with isolated(base / "home"):
        return make_hostile_repo(base)


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    root = copy_repo(template, tmp_path / "repo")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secrets.yaml").write_text(FOREIGN_YAML)
    (tmp_path / "outside" / "credentials").write_text(FOREIGN_INI)
    return root


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.symlink(target, path)


CASES = {
    "gitops.yaml": (lambda r, o: link(r / "gitops.yaml", o / "secrets.yaml"), ["check"]),
    "a .dvc pointer": (lambda r, o: link(r / "models" / MODEL / "v1.dvc", o / "secrets.yaml"), ["check"]),
    ".dvc/config": (lambda r, o: link(r / ".dvc" / "config", o / "credentials"),
                    ["check", "--remote"]),
    "a train config": (lambda r, o: link(r / "configs" / "train.yaml", o / "secrets.yaml"),
                       ["train", "configs/train.yaml"]),
    "a prompt config": (lambda r, o: link(r / "configs" / "prompt.yaml", o / "secrets.yaml"),
                        ["prompt", "add", MODEL, "--config", "configs/prompt.yaml"]),
    "a classification block": (lambda r, o: link(r / "configs" / "task.yaml", o / "secrets.yaml"),
                               ["model", "create", "rated", "--task", "classification", "--classification",
                                "configs/task.yaml"]),
    "a directory link on the way": (lambda r, o: link(r / "configs", o), ["train", "configs/secrets.yaml"]),
    "a metrics file": (lambda r, o: link(r / "metrics.yaml", o / "secrets.yaml"),
                       ["register", MODEL, "models/" + MODEL + "/v1", "--metrics", "metrics.yaml"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_link_out_of_the_repository_is_refused_unread(repo: Path, case: str) -> None:
    make, args = CASES[case]
    make(repo, repo.parent / "outside")
    res = run_gitops(*args, cwd=repo)
    out = res.stdout + res.stderr
    assert res.exit_code == 1 and "Traceback" not in out, out
    assert SECRET not in out and "aws_secret_access_key" not in out, out
    assert "outside the repository" in out or "link outside" in out, out


def test_links_inside_the_repository_and_outside_any_still_read(repo: Path, tmp_path: Path) -> None:
    settings = repo / "config" / "gitops.yaml"
    settings.parent.mkdir()
    (repo / "gitops.yaml").rename(settings)
    link(repo / "gitops.yaml", Path("config") / "gitops.yaml")  # relative, inside the work tree
    assert run_gitops("check", cwd=repo).exit_code == 0
    before = git_state(repo)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "real.yaml").write_text(json.dumps({"model": "not-a-base@v1"}))
    link(mine / "train.yaml", mine / "real.yaml")  # a user's own link, outside any repository
    res = run_gitops("train", str(mine / "train.yaml"), cwd=repo)
    assert res.exit_code == 1 and "outside the repository" not in res.stderr, res.stderr
    assert "unknown key 'model'" in res.stderr, res.stderr  # it was read
    assert git_state(repo) == before
