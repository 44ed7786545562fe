"""``gitops approvals`` against the emulator: who may approve a move of a protected alias."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gitops.adapters.github import connect
from gitops.github.approvals import check_approvals
from tests.github_fixtures import REPO, Site

# every test here in its own HOME, no GitHub variables, no retries (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("github_env")

PROD = "registry/review/aliases/production.yaml"
STAGING = "registry/review/aliases/staging.yaml"


def _check(site: Site, number: int):
    return check_approvals(connect(REPO, token=site.tokens["org-reader"], base_url=site.url), number)


def test_protected_change_without_review_fails_and_names_owners(site: Site, monkeypatch) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.use(monkeypatch, "org-reader")
    res = CliRunner().invoke(__import__("gitops.cli", fromlist=["main"]).main,
                             ["approvals", "--pr", str(number), "-C", str(site.work)])
    assert res.exit_code == 1
    assert "who may approve: alice, carol." in res.output  # dave only reads; teams are expanded
    assert "@acme/mlops" in res.output and PROD in res.output
    assert "without a code owner's approval" in res.output


def test_approval_by_non_owner_fails(site: Site) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="carol")
    site.review("bob", number, "APPROVE")
    res = _check(site, number)
    assert not res.ok and res.changes[0].approved_by == [] and res.changes[0].eligible == ["alice"]


def test_approval_by_the_author_does_not_count(site: Site) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="carol")
    site.review("alice", number, "COMMENT")
    site.em.add_review(number, "carol", "APPROVE")  # GitHub refuses this; the check must not rely on it
    assert not _check(site, number).ok


def test_owner_by_team_membership_passes(site: Site, monkeypatch) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.review("carol", number, "APPROVE")
    site.use(monkeypatch, "org-reader")
    from gitops.cli import main

    res = CliRunner().invoke(main, ["approvals", "--pr", str(number), "-C", str(site.work)])
    assert res.exit_code == 0, res.output
    assert "approved by carol (code owner)" in res.output


def test_owner_with_read_access_does_not_count(site: Site) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.review("dave", number, "APPROVE")
    res = _check(site, number)
    assert not res.ok and any("dave is a code owner but has 'read' access" in n for n in res.changes[0].notes)


def test_approval_of_an_older_commit_does_not_count(site: Site) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.review("alice", number, "APPROVE")
    assert _check(site, number).ok
    site.commit_files("prod-v2", {PROD: "version: v3\n"})  # a new push after the approval
    res = _check(site, number)
    assert not res.ok and "approved an older commit" in " ".join(res.changes[0].notes)


def test_later_changes_requested_overrides_approval(site: Site) -> None:
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.review("alice", number, "APPROVE")
    site.review("alice", number, "COMMENT")  # a comment changes nothing
    assert _check(site, number).ok
    site.review("alice", number, "REQUEST_CHANGES")
    assert not _check(site, number).ok


def test_unprotected_change_passes_with_a_message(site: Site, monkeypatch) -> None:
    number = site.pull_request("staging-v3", {STAGING: "version: v3\n"}, author="bob")
    site.use(monkeypatch, "org-reader")
    from gitops.cli import main

    res = CliRunner().invoke(main, ["approvals", "--pr", str(number), "-C", str(site.work)])
    assert res.exit_code == 0 and "changes no protected alias" in res.output


def test_protection_is_read_from_the_base_branch(site: Site) -> None:
    """A PR that drops the protection and moves the alias in one go is still guarded."""
    from tests.github_fixtures import MODEL_YAML

    unprotected = MODEL_YAML.replace("protected:\n  production: ['@acme/mlops']\n", "")
    number = site.pull_request("sneaky", {PROD: "version: v3\n", "registry/review/model.yaml": unprotected},
                               author="bob")
    assert not _check(site, number).ok


def test_codeowners_fallback_to_model_owners(site: Site) -> None:
    site.commit_files("main", {".github/CODEOWNERS": "# empty\n"})
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.review("alice", number, "APPROVE")
    res = _check(site, number)
    assert res.ok and "using the owners in registry/review/model.yaml" in res.changes[0].notes[0]


def test_unknown_team_is_a_github_error(site: Site) -> None:
    from gitops.errors import GithubError

    site.commit_files("main", {".github/CODEOWNERS": f"/{PROD} @acme/ghosts\n"})
    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    with pytest.raises(GithubError, match=r"team @acme/ghosts.*read:org"):
        _check(site, number)


def test_the_default_github_token_cannot_expand_teams(site: Site, monkeypatch) -> None:
    """With Actions' GITHUB_TOKEN alone the check cannot read @acme/mlops: it fails (exit 1) saying
    which token it needs, rather than passing or naming nobody."""
    from gitops.cli import main

    number = site.pull_request("prod-v2", {PROD: "version: v2\n"}, author="bob")
    site.review("alice", number, "APPROVE")
    site.use(monkeypatch)  # the bot: an installation token
    res = CliRunner().invoke(main, ["approvals", "--pr", str(number), "-C", str(site.work)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "403" in res.output and "@acme/mlops" in res.output and "read:org" in res.output


def test_a_file_list_github_may_have_cut_short_fails_closed(site: Site, monkeypatch) -> None:
    """GitHub lists at most 3,000 files of a PR: 3,001 bulk files listed first hide the production
    alias file. The check must not say "changes no protected alias": one sentence, exit 1."""
    from gitops.cli import main
    from tests.test_github_emulator import big_pull

    number = big_pull(site, 3001, {PROD: "version: v2\n"})
    site.use(monkeypatch, "org-reader")
    res = CliRunner().invoke(main, ["approvals", "--pr", str(number), "-C", str(site.work)])
    assert res.exit_code == 1, res.output
    assert "changes no protected alias" not in res.output and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert f"PR #{number} changes 3,002 files" in line and "at most 3,000" in line and "fails closed" in line
