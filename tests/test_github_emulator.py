"""The emulator itself: contract violations in requests and responses are caught, not served."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.github_fixtures import REPO, Site

# every test here in its own HOME, no GitHub variables, no retries (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("github_env")


def test_a_bad_request_body_is_a_violation(site: Site) -> None:
    number = site.pull_request("b", {"x.txt": "x\n"}, "bob")
    headers = {"Authorization": f"token {site.tokens['bob']}"}
    resp = requests.post(f"{site.url}/repos/{REPO}/issues/{number}/comments", json={"text": "hi"},
                         headers=headers, timeout=10)
    assert resp.status_code == 500
    assert "'body' is a required property" in resp.json()["message"]
    assert len(site.em.violations) == 1 and "request POST" in site.em.violations[0]
    assert not site.em.comments  # the handler never ran
    site.em.violations.clear()


def test_a_bad_response_is_a_violation(site: Site) -> None:
    site.em.response_hook = lambda call, body: {**body, "login": None} if call == "GET /user" else body
    resp = requests.get(f"{site.url}/user", headers={"Authorization": f"token {site.tokens['bob']}"}, timeout=10)
    assert resp.status_code == 500 and "response to GET /user" in resp.json()["message"]
    assert len(site.em.violations) == 1
    site.em.violations.clear()


def test_urls_in_responses_point_at_the_emulator(site: Site) -> None:
    number = site.pull_request("b", {"x.txt": "x\n"}, "bob")
    resp = requests.get(f"{site.url}/repos/{REPO}/pulls/{number}",
                        headers={"Authorization": f"token {site.tokens['bob']}"}, timeout=10)
    assert "api.github.com" not in resp.text and resp.json()["issue_url"].startswith(site.url)
    assert resp.json()["head"]["sha"] == site.em.sha("b")


def test_unknown_token_gets_401_with_a_valid_error_body(site: Site) -> None:
    resp = requests.get(f"{site.url}/repos/{REPO}/pulls/1", headers={"Authorization": "token nope"}, timeout=10)
    assert resp.status_code == 401 and resp.json()["message"] == "Bad credentials"


def test_standalone_server_seeds_from_json(site: Site, tmp_path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"users": [{"login": "ci", "token": "ci-token", "permission": "write"}],
                                 "teams": [{"org": "acme", "slug": "mlops", "members": ["ci"]}]}))
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulator", "--port", "0", "--repo-dir", str(site.origin),
                             "--repo", REPO, "--state", str(state)], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        resp = requests.get(f"{url}/orgs/acme/teams/mlops/members", headers={"Authorization": "token ci-token"},
                            timeout=10)
        assert [m["login"] for m in resp.json()] == ["ci"]
        seed = {"users": [{"login": "dev", "token": "dev-token"}], "pulls": [{"head": "main", "author": "dev"}]}
        requests.post(f"{url}/_emulator/seed", json=seed, timeout=10).raise_for_status()
        state = requests.get(f"{url}/_emulator/state", timeout=10).json()
        assert state["violations"] == [] and state["pulls"][0]["author"] == "dev"
        assert state["calls"] == ["GET /orgs/acme/teams/mlops/members"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_internal_error_is_a_violation_not_a_404(site: Site, monkeypatch) -> None:
    """A bug in a handler (here a KeyError) used to come back as a 404 that passed validation, so a
    caller treating 404 as "not there" kept going. It is now a 500 and a recorded violation."""
    number = site.pull_request("b", {"x.txt": "x\n"}, "bob")

    def broken(request, login, number):
        return 200, {}["missing"]

    monkeypatch.setattr(site.em, "_get_pull", broken)
    resp = requests.get(f"{site.url}/repos/{REPO}/pulls/{number}",
                        headers={"Authorization": f"token {site.tokens['bob']}"}, timeout=10)
    assert resp.status_code == 500 and "internal error answering GET" in resp.json()["message"]
    (violation,) = site.em.violations
    assert violation.startswith(f"internal error answering GET /repos/{REPO}/pulls/{number}: KeyError: 'missing'")
    site.em.violations.clear()


def test_a_pull_whose_branch_vanished_is_a_violation(site: Site) -> None:
    """Git lookups that fail inside a handler are emulator/setup errors, not GitHub answers."""
    number = site.pull_request("gone", {"x.txt": "x\n"}, "bob")
    subprocess.run(["git", "update-ref", "-d", "refs/heads/gone"], cwd=site.origin, check=True)
    resp = requests.get(f"{site.url}/repos/{REPO}/pulls/{number}",
                        headers={"Authorization": f"token {site.tokens['bob']}"}, timeout=10)
    assert resp.status_code == 500 and len(site.em.violations) == 1
    assert "LookupError" in site.em.violations[0] and "internal error" in site.em.violations[0]
    site.em.violations.clear()


def test_an_unknown_commit_gets_githubs_422(site: Site) -> None:
    resp = requests.post(f"{site.url}/repos/{REPO}/statuses/{'0' * 40}", json={"state": "success"},
                         headers={"Authorization": f"token {site.tokens['gitops-bot']}"}, timeout=10)
    assert resp.status_code == 422 and resp.json()["message"].startswith("No commit found for SHA")


def test_team_membership_needs_an_org_scope(site: Site) -> None:
    """Actions' GITHUB_TOKEN (an installation token) gets 403; a PAT without read:org does not
    see the team (404); a PAT with read:org lists it."""
    url = f"{site.url}/orgs/acme/teams/mlops/members"

    def get(token: str) -> requests.Response:
        return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10)

    bot = get(site.tokens["gitops-bot"])
    assert bot.status_code == 403 and bot.json()["message"] == "Resource not accessible by integration"
    repo_only = site.em.add_token("alice", scopes=("repo",))
    assert get(repo_only).status_code == 404
    reader = get(site.tokens["org-reader"])
    assert reader.status_code == 200 and [m["login"] for m in reader.json()] == ["alice", "carol", "dave"]


def big_pull(site: Site, n_files: int, extra: dict[str, str]) -> int:
    """A PR adding ``n_files`` files under ``bulk/`` (listed before ``registry/``) plus ``extra``."""
    files = {f"bulk/f{i:05d}.txt": f"{i}\n" for i in range(n_files)}
    return site.pull_request("big", {**files, **extra}, "bob")


def test_pull_files_are_capped_at_3000_and_paginated(site: Site) -> None:
    number = big_pull(site, 3001, {"registry/review/aliases/production.yaml": "version: v2\n"})
    headers = {"Authorization": f"token {site.tokens['bob']}"}
    pull = requests.get(f"{site.url}/repos/{REPO}/pulls/{number}", headers=headers, timeout=10).json()
    assert pull["changed_files"] == 3002  # the real count
    listed, url, pages = [], f"{site.url}/repos/{REPO}/pulls/{number}/files?per_page=250", 0
    while url:
        resp = requests.get(url, headers=headers, timeout=30)
        assert resp.status_code == 200 and len(resp.json()) <= 100  # per_page is capped at 100
        listed += [f["filename"] for f in resp.json()]
        url, pages = resp.links.get("next", {}).get("url"), pages + 1
    assert pages == 30 and len(listed) == 3000 and len(set(listed)) == 3000
    assert "registry/review/aliases/production.yaml" not in listed  # the 3,002nd file is never listed
    beyond = requests.get(f"{site.url}/repos/{REPO}/pulls/{number}/files?per_page=100&page=31", headers=headers,
                          timeout=10)
    assert beyond.json() == []
    default = requests.get(f"{site.url}/repos/{REPO}/pulls/{number}/files", headers=headers, timeout=10)
    assert len(default.json()) == 30 and 'rel="next"' in default.headers["Link"]
