"""The emulator itself: contract violations in requests and responses are caught, not served."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from tests.github_fixtures import REPO, Site, github_env, site  # noqa: F401 - fixtures


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
