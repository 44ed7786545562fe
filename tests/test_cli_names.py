"""One way to name things: the directory is ``-C/--repo-dir`` on every command, the GitHub repository
``--github-repo OWNER/NAME`` on every command that talks to GitHub, and the GitHub repository falls
back to gitops.yaml's ``github.repo``, then ``$GITHUB_REPOSITORY``, the same way everywhere."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import click
import pytest

from gitops import api
from gitops.cli import main
from gitops.errors import GithubError
from gitops.github.repository import choose, resolve
from tests.conftest import run_gitops
from tests.test_docs import walk

DIRECTORY = (["-C"], ["--repo-dir"], "repo_dir")
GITHUB = (["--github-repo"], "github_repo")
# Commands that run in no existing GitOps repository: init makes one (its DIRECTORY argument), judge
# reads a results file and an endpoint, demo builds its own scratch repository (--keep DIR), and the
# hidden reference writes the toolkit's own docs/reference.md.
NO_REPOSITORY = {"gitops init", "gitops judge", "gitops demo", "gitops reference"}
# Directories that are not the repository the command runs in.
OTHER_DIRECTORIES = {("gitops serve", "state_dir"), ("gitops demo", "keep")}


def _names_a_repository(option: click.Option) -> bool:
    flags = option.opts + option.secondary_opts
    words = {w for f in [*flags, option.name or ""] for w in re.split(r"[-_]+", f.lower())}
    return "-C" in flags or bool(words & {"repo", "repository", "repos", "root", "dir", "directory"})


def _github_verbs(command: click.Command) -> set[str]:
    """The verbs of gitops.api a command's callback calls that live in gitops.github (GitHub's side)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(command.callback)))
    called = {node.attr for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "api"}
    return {name for name in called if name in api.__all__
            and getattr(api, name).__module__.startswith("gitops.github.")}


def test_every_command_spells_the_directory_and_the_github_repository_one_way() -> None:
    wrong = []
    for path, command in walk(main):
        if isinstance(command, click.Group):
            continue
        options = [p for p in command.params if isinstance(p, click.Option)]
        for option in options:
            directory_like = isinstance(option.type, click.Path) and not option.type.file_okay
            if directory_like and (path, option.name) not in OTHER_DIRECTORIES and option.name != "repo_dir":
                wrong.append(f"{path} {option.opts}: a directory option that is not -C/--repo-dir")
            if not _names_a_repository(option) or (path, option.name) in OTHER_DIRECTORIES:
                continue
            spelled = ([o for o in option.opts if len(o) == 2], [o for o in option.opts if len(o) > 2], option.name)
            if spelled != DIRECTORY and (option.opts, option.name) != GITHUB:
                wrong.append(f"{path} {option.opts} ({option.name}): spell it -C/--repo-dir or --github-repo")
        names = {o.name for o in options}
        if path not in NO_REPOSITORY and "repo_dir" not in names:
            wrong.append(f"{path}: no -C/--repo-dir")
        if _github_verbs(command) and "github_repo" not in names:
            wrong.append(f"{path}: calls GitHub ({', '.join(sorted(_github_verbs(command)))}) without --github-repo")
    assert wrong == [], "\n".join(wrong)


def test_the_github_commands_are_found_and_say_the_fallback() -> None:
    """The derived list above is not empty by accident: promote, approvals, report and ingest call GitHub, and
    their --github-repo help names the fallback order."""
    commands = dict(walk(main))
    found = {path for path, c in commands.items() if not isinstance(c, click.Group) and _github_verbs(c)}
    assert found == {"gitops promote", "gitops approvals", "gitops report", "gitops ingest"}
    # train --pr reaches GitHub inside gitops.train (a proposal), which the walk cannot see
    for path in found | {"gitops train"}:
        [option] = [p for p in commands[path].params if p.name == "github_repo"]
        assert "gitops.yaml" in option.help and "$GITHUB_REPOSITORY" in option.help and option.metavar == "OWNER/NAME"


def test_the_repository_comes_from_the_option_then_gitops_yaml_then_the_environment() -> None:
    env = {"GITHUB_REPOSITORY": "acme/models"}
    assert choose("acme/other", "acme/models", env) == "acme/other"
    assert choose(None, "acme/models", env) == "acme/models"
    assert choose(None, "acme/models", {}) == "acme/models"
    assert choose(None, None, env) == "acme/models"
    assert choose(None, "Acme/Models", env) == "Acme/Models"  # GitHub's names ignore case
    with pytest.raises(GithubError) as none:
        choose(None, None, {})
    assert all(s in str(none.value) for s in ("--github-repo OWNER/NAME", "github.repo in gitops.yaml",
                                              "GITHUB_REPOSITORY"))
    # A workflow's repository disagrees with gitops.yaml (a rename, or a pull request's own edit).
    with pytest.raises(GithubError, match=r"github.repo in gitops.yaml is 'acme/old' but GITHUB_REPOSITORY is"):
        choose(None, "acme/old", env)
    for bad in ("acme", "acme/models/x", "-acme/models", "acme/..", "acme/mod els", "a" * 40 + "/m"):
        with pytest.raises(GithubError, match="must look like OWNER/NAME"):
            choose(bad, None, {})
        with pytest.raises(GithubError, match="GITHUB_REPOSITORY"):
            choose(None, None, {"GITHUB_REPOSITORY": bad})


def test_gitops_init_writes_the_name_every_github_command_reads(tmp_path: Path) -> None:
    named = run_gitops("init", str(tmp_path / "named"), "--github-repo", "acme/my-models",
                       "--remote", str(tmp_path / "r1"))
    assert named.exit_code == 0, named.stderr
    assert resolve(None, tmp_path / "named" / "registry", {}) == "acme/my-models"  # any directory inside
    assert resolve("acme/flag", tmp_path / "named", {}) == "acme/flag"
    unnamed = run_gitops("init", str(tmp_path / "unnamed"), "--remote", str(tmp_path / "r2"))
    assert unnamed.exit_code == 0, unnamed.stderr
    # No placeholder that would be taken for a real repository: the environment decides, or nothing does.
    assert resolve(None, tmp_path / "unnamed", {"GITHUB_REPOSITORY": "acme/env"}) == "acme/env"
    assert resolve(None, tmp_path, {"GITHUB_REPOSITORY": "acme/env"}) == "acme/env"  # outside any work tree
    bad = run_gitops("init", str(tmp_path / "bad"), "--github-repo", "acme")
    assert bad.exit_code == 1 and "--github-repo 'acme' must look like OWNER/NAME" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_github_command_with_no_repository_says_where_one_comes_from(gitops_repo: Path) -> None:
    """Before any request: approvals, report --post and promote --pr name all three sources."""
    results = Path(__file__).parent / "golden" / "results-v3.json"
    out = gitops_repo / "r.md"
    for args in (["approvals", "--pr", "1"], ["report", str(results), "--post", "--pr", "1", "--out", str(out)]):
        result = run_gitops(*args, "-C", str(gitops_repo))
        assert result.exit_code == 1, result
        assert "pass --github-repo OWNER/NAME, set github.repo in gitops.yaml, or set GITHUB_REPOSITORY" \
            in result.stderr
    assert not out.exists()  # checked before the report was rendered or written
    result = run_gitops("report", str(results), "--post", "--pr", "1", "--out", str(out), "--github-repo", "acme/m")
    assert result.exit_code == 1 and "GITHUB_TOKEN is not set" in result.stderr and not out.exists()
    unused = run_gitops("report", str(results), "--github-repo", "acme/models", "--out", str(gitops_repo / "r.md"))
    assert unused.exit_code == 2 and "--github-repo needs --post" in unused.stderr
