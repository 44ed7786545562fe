"""Sticky PR comments, the step summary, and the adapter's error sentences, against the emulator."""

from __future__ import annotations

import pytest

from gitops.adapters.github import connect
from gitops.errors import GithubError
from gitops.github.comments import append_step_summary, post_sticky_comment
from tests.github_fixtures import REPO, Site

# every test here in its own HOME, no GitHub variables, no retries (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("github_env")

MARKER = "<!-- gitops-report model=review alias=staging -->"


def test_sticky_comment_created_then_updated_in_place(site: Site, monkeypatch) -> None:
    number = site.pull_request("staging-v3", {"registry/review/aliases/staging.yaml": "version: v3\n"}, "bob")
    site.use(monkeypatch)
    url, created = post_sticky_comment(None, number, MARKER, "loss 1.0")
    assert created and url.endswith(f"/pull/{number}#issuecomment-{min(site.em.comments)}")
    url2, created2 = post_sticky_comment(REPO, number, MARKER, f"{MARKER}\nloss 0.9")
    assert (url2, created2) == (url, False)
    [comment] = site.em.comments.values()
    assert comment.author == "gitops-bot" and comment.body == f"{MARKER}\nloss 0.9"
    # Another model's report is a different comment.
    _, created3 = post_sticky_comment(None, number, MARKER.replace("review", "other"), "x")
    assert created3 and len(site.em.comments) == 2


def test_a_human_comment_copying_the_marker_is_not_updated(site: Site, monkeypatch) -> None:
    number = site.pull_request("staging-v3", {"registry/review/aliases/staging.yaml": "version: v3\n"}, "bob")
    human = site.em.add_comment(number, "alice", f"{MARKER}\nI pasted the marker")
    site.use(monkeypatch)
    _, created = post_sticky_comment(None, number, MARKER, "loss 1.0")
    assert created
    assert site.em.comments[human].body == f"{MARKER}\nI pasted the marker"


def test_step_summary_appends_only_in_actions(tmp_path, monkeypatch) -> None:
    assert append_step_summary("nothing") is None
    target = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    append_step_summary("# one")
    append_step_summary("two\n")
    assert target.read_text() == "# one\ntwo\n"


def test_github_errors_become_one_sentence(site: Site, monkeypatch) -> None:
    with pytest.raises(GithubError, match="rejected the token"):
        connect(REPO, token="wrong", base_url=site.url).login()
    gh = connect(REPO, token=site.tokens["bob"], base_url=site.url)
    with pytest.raises(GithubError, match=r"found nothing while reading pull request #99"):
        gh.pull(99)
    with pytest.raises(GithubError, match=r"cannot reach GitHub at http://127.0.0.1:9"):
        connect(REPO, token="t", base_url="http://127.0.0.1:9").pull(1)
    with pytest.raises(GithubError, match="GITHUB_TOKEN is not set"):
        connect(REPO)
    with pytest.raises(GithubError, match="GITHUB_REPOSITORY"):
        connect(None, token="t")
    site.use(monkeypatch)
    monkeypatch.setenv("GITHUB_API_URL", site.url + "/")  # a trailing slash is fine
    assert connect().login() == "gitops-bot"


def test_statuses_dispatches_and_codeowners_errors(site: Site) -> None:
    gh = connect(REPO, token=site.tokens["gitops-bot"], base_url=site.url)
    head = site.commit_files("feature", {"x.txt": "x\n"})
    gh.set_status(head, "failure", "gitops/approvals", "needs a code owner")
    gh.dispatch("train", {"dataset": "reviews@v2"})
    assert site.em.statuses[0]["state"] == "failure" and site.em.dispatches[0]["event_type"] == "train"
    assert gh.codeowners_errors("main") == []
    site.commit_files("main", {".github/CODEOWNERS": "*.py @nobody\n!x @acme/mlops\n"})
    kinds = [(e["line"], e["kind"]) for e in gh.codeowners_errors("main")]
    assert kinds == [(1, "Unknown owner"), (2, "Invalid pattern")]


def test_report_post_cli_creates_then_updates_one_comment(site: Site, monkeypatch, tmp_path) -> None:
    """`gitops report RESULTS --post --pr N`: the real CLI, the real renderer, the emulator."""
    from pathlib import Path

    from tests.conftest import run_gitops

    results = Path(__file__).parent / "golden" / "results-v3.json"
    number = site.pull_request("staging-v3", {"registry/review/aliases/staging.yaml": "version: v3\n"}, "bob")
    site.use(monkeypatch)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    first = run_gitops("report", str(results), "--post", "--pr", str(number), "--out", str(tmp_path / "r.md"),
                       "-C", str(site.work))
    assert first.exit_code == 0, first.stderr
    assert f"Posted the report on PR #{number}" in first.stderr
    second = run_gitops("report", str(results), "--post", "--pr", str(number), "--out", str(tmp_path / "r.md"),
                        "-C", str(site.work))
    assert second.exit_code == 0 and "Updated the report" in second.stderr
    [comment] = site.em.comments.values()
    assert comment.body == (tmp_path / "r.md").read_text()
    assert comment.body.startswith("<!-- gitops-report model=")
    assert summary.read_text().count("<!-- gitops-report") == 2
    usage = run_gitops("report", str(results), "--post")
    assert usage.exit_code == 2


def test_report_post_updates_the_oldest_bot_comment_and_never_a_humans(site: Site, monkeypatch, tmp_path) -> None:
    """Two bot comments carry the report's marker (e.g. a crashed run posted twice) and a person
    pasted it before both: `gitops report --post` updates the OLDEST bot comment in place and
    leaves the newer bot comment and the person's comment as they were."""
    from pathlib import Path

    from tests.conftest import run_gitops

    results = Path(__file__).parent / "golden" / "results-v3.json"
    number = site.pull_request("staging-v3", {"registry/review/aliases/staging.yaml": "version: v3\n"}, "bob")
    rendered = run_gitops("report", str(results), "--out", str(tmp_path / "r.md"))
    assert rendered.exit_code == 0, rendered.stderr
    report = (tmp_path / "r.md").read_text()
    marker = report.split("\n", 1)[0]
    assert marker.startswith("<!-- gitops-report")
    human = site.em.add_comment(number, "alice", f"{marker}\nI copied the marker first")
    oldest = site.em.add_comment(number, "gitops-bot", f"{marker}\nold results")
    newer = site.em.add_comment(number, "gitops-bot", f"{marker}\nduplicate results")
    other = site.em.add_comment(number, "gitops-bot", "<!-- gitops-report model=other alias=staging -->\nx")
    assert human < oldest < newer < other  # the emulator lists comments oldest first, as GitHub does
    site.use(monkeypatch)
    result = run_gitops("report", str(results), "--post", "--pr", str(number), "--out", str(tmp_path / "r2.md"),
                        "-C", str(site.work))
    assert result.exit_code == 0, result.stderr
    assert "Updated the report" in result.stderr
    comments = site.em.comments
    assert comments[oldest].body == report
    assert comments[newer].body == f"{marker}\nduplicate results"
    assert comments[human].body == f"{marker}\nI copied the marker first"
    assert comments[other].body.endswith("\nx") and len(comments) == 4  # nothing created
    assert f"PATCH /repos/{REPO}/issues/comments/{oldest}" in site.em.calls
