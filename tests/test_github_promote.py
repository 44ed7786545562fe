"""``gitops promote``: a branch with one commit moving the alias; with --pr, pushed and opened."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gitops.cli import main
from tests.github_fixtures import REPO, Site, git

# every test here in its own HOME, no GitHub variables, no retries (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("github_env")


def test_promote_makes_a_local_branch_and_commit_only(site: Site) -> None:
    head = git(site.work, "rev-parse", "HEAD")
    res = CliRunner().invoke(main, ["promote", "review@v3", "--to", "staging", "-C", str(site.work)])
    assert res.exit_code == 0, res.output
    branch = "gitops/promote-review-staging-v3"
    assert f"v2 -> v3 on branch {branch}" in res.output
    assert git(site.work, "rev-parse", "HEAD") == head and git(site.work, "branch", "--show-current") == "main"
    assert git(site.work, "show", f"{branch}:registry/review/aliases/staging.yaml") == "version: v3"
    assert git(site.work, "diff", "--name-only", f"main...{branch}") == "registry/review/aliases/staging.yaml"
    assert git(site.work, "ls-remote", "origin", branch) == ""  # nothing pushed
    again = CliRunner().invoke(main, ["promote", "review@v3", "--to", "staging", "-C", str(site.work)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_promote_pr_opens_a_pull_request_with_the_alias_file(site: Site, monkeypatch) -> None:
    site.use(monkeypatch)
    res = CliRunner().invoke(main, ["promote", "review@staging", "--to", "production", "--pr",
                                    "--note", "beats v1 on loss", "-C", str(site.work)])
    assert res.exit_code == 0, res.output
    [pull] = site.em.pulls.values()
    assert pull.head == "gitops/promote-review-production-v2" and pull.base == "main"
    assert pull.author == "gitops-bot" and f"Opened pull request #{pull.number}" in res.output
    assert "from `v1` to `v2`" in pull.body and "Why: beats v1 on loss" in pull.body
    files = site.em.changed_files(pull)
    assert [(f["filename"], f["status"]) for f in files] == [("registry/review/aliases/production.yaml", "modified")]
    assert site.em.blob(pull.head, "registry/review/aliases/production.yaml") == \
        b"version: v2\nnote: beats v1 on loss\n"


def test_promote_pr_checks_repository_and_token_first_and_a_failed_try_leaves_nothing(site: Site, monkeypatch) -> None:
    """Every failed try (no repository named, no token, a token GitHub rejects, a repository that does
    not exist, a pull request GitHub refuses after the push) leaves no branch, local or remote, and the
    re-run, naming the repository only in gitops.yaml, opens the pull request."""
    branch = "gitops/promote-review-staging-v3"

    def nothing_left() -> None:
        assert git(site.work, "branch", "--list", branch) == ""
        assert git(site.work, "ls-remote", "origin", branch) == ""
        assert site.em.pulls == {} and git(site.work, "status", "--porcelain") == ""

    def promote(*extra: str) -> str:
        res = CliRunner().invoke(main, ["promote", "review@v3", "--to", "staging", "--pr", *extra,
                                        "-C", str(site.work)])
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        nothing_left()
        return res.output

    monkeypatch.setenv("GITHUB_API_URL", site.url)
    assert "pass --github-repo OWNER/NAME, set github.repo in gitops.yaml, or set GITHUB_REPOSITORY" in promote()
    assert "GITHUB_TOKEN is not set" in promote("--github-repo", REPO)
    monkeypatch.setenv("GITHUB_TOKEN", "not-a-token")
    assert "rejected the token" in promote("--github-repo", REPO)
    monkeypatch.setenv("GITHUB_TOKEN", site.tokens["gitops-bot"])
    assert "404" in promote("--github-repo", "acme/no-such-repo")
    refused = promote("--github-repo", REPO, "--base", "no-such-branch")  # pushed, then GitHub says 422
    assert "422" in refused and "opening a pull request" in refused
    site.commit_files("main", {"gitops.yaml": f"github:\n  repo: {REPO}\n"}, "name the GitHub repository")
    res = CliRunner().invoke(main, ["promote", "review@v3", "--to", "staging", "--pr", "-C", str(site.work)])
    assert res.exit_code == 0, res.output
    [pull] = site.em.pulls.values()
    assert pull.head == branch and git(site.work, "ls-remote", "origin", branch).endswith(f"refs/heads/{branch}")


def test_promote_refuses_a_missing_version_and_a_no_op(site: Site) -> None:
    res = CliRunner().invoke(main, ["promote", "review@v9", "--to", "staging", "-C", str(site.work)])
    assert res.exit_code == 1 and "has no version v9" in res.output
    res = CliRunner().invoke(main, ["promote", "review@v2", "--to", "staging", "-C", str(site.work)])
    assert res.exit_code == 1 and "already points to v2" in res.output
    res = CliRunner().invoke(main, ["promote", "review@v2", "--to", "v3", "-C", str(site.work)])
    assert res.exit_code == 1 and "shaped like a version" in res.output


def test_a_killed_promote_never_moves_the_work_tree_nor_leaves_half_a_branch(site: Site) -> None:
    """SIGKILL while git updates a ref (git's own hook, both states) and at 16 spread moments: the work
    tree stays on main, clean, at the same commit; the promotion branch is either absent or holds
    the whole commit (the alias file moved, nothing else)."""
    import subprocess

    from tests.crash_fixtures import gitops_cmd, kill_in_git, run_and_kill
    from tests.data_fixtures import subprocess_env

    head, branch = git(site.work, "rev-parse", "HEAD"), "gitops/promote-review-staging-v3"

    def holds() -> None:
        assert git(site.work, "branch", "--show-current") == "main" and git(site.work, "rev-parse", "HEAD") == head
        assert git(site.work, "status", "--porcelain") == ""
        if git(site.work, "branch", "--list", branch):
            assert git(site.work, "diff", "--name-only", f"main...{branch}") == "registry/review/aliases/staging.yaml"
            assert git(site.work, "show", f"{branch}:registry/review/aliases/staging.yaml") == "version: v3"
            git(site.work, "branch", "-D", branch)

    for state in ("prepared", "committed"):
        hook = kill_in_git(site.work, state)
        subprocess.run(gitops_cmd("promote", "review@v3", "--to", "staging"), cwd=site.work, env=subprocess_env(),
                       capture_output=True, timeout=120, start_new_session=True, check=False)
        hook.unlink()
        holds()
    killed = 0
    for i in range(16):  # from before Python is up to past a whole run on a fast machine (~0.3 s)
        rc = run_and_kill(site.work, gitops_cmd("promote", "review@v3", "--to", "staging"), 0.02 + i * 0.04)
        killed += rc is None
        assert rc in (None, 0), rc          # a run that was not killed succeeded (no lock left in its way)
        holds()
    assert killed                           # the spread did kill runs mid-command
    assert run_and_kill(site.work, gitops_cmd("promote", "review@v3", "--to", "staging"), 120) == 0
    holds()
