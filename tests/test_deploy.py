"""gitops deploy against a real HTTP receiver on 127.0.0.1 that verifies every signature."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gitops.cli import main
from gitops.core.workspace import Workspace
from gitops.deploy import DeployFailed, deploy
from gitops.errors import DeployError
from tests.deploy_fixtures import SECRET, write_config

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")

ENV = {"TEST_DEPLOY_SECRET": SECRET}


class Sleeps(list):
    """An injected ``sleep`` that records the backoff instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_delivery_succeeds_and_verifies(repo, receiver):
    write_config(repo.root, receiver.url)
    result = deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=Sleeps())
    assert [(r.model, r.alias, r.version, r.previous, r.status, r.attempts) for r in result.deliveries] == [
        ("chat", "production", "v3", "v1", 200, 1)]
    assert receiver.rejected == []
    (payload,) = receiver.accepted
    assert payload == {
        "event": "alias.moved", "model": "chat", "alias": "production", "version": "v3",
        "previous_version": "v1", "protected": True, "format": "ct2", "quantization": "int8",
        "md5": f"{3:032x}.dir", "base_model": None, "dvc_file": "models/chat/v3.dvc",
        "weights_path": "models/chat/v3", "commit": repo.head, "base_commit": repo.base,
        "repository": "acme/models", "delivery": result.deliveries[0].delivery_id}
    headers, _ = receiver.requests[0]
    assert headers["X-Gitops-Signature"].startswith("v1=")
    assert headers["X-Gitops-Delivery"] == result.deliveries[0].delivery_id


def test_only_hooked_moved_aliases_are_sent(repo, receiver):
    # Hook every model's production and canary: chat@production moved, other@production did not,
    # other@canary is new (and not protected: a hook naming no models skips it), chat@staging moved
    # but is not hooked, chat@beta was removed. Naming the models, the hook fires for canary too.
    write_config(repo.root, receiver.url, models=None, aliases=["production", "canary"])
    result = deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=Sleeps())
    sent = sorted((p["model"], p["alias"], p["version"], p["previous_version"]) for p in receiver.accepted)
    assert sent == [("chat", "production", "v3", "v1")]
    assert result.unhooked == ["chat@staging"] and result.unprotected == ["other@canary"]
    assert result.removed == ["chat@beta"]
    write_config(repo.root, receiver.url, models=["chat", "other"], aliases=["production", "canary"])
    result = deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, dry_run=True)
    assert sorted((d.model, d.alias) for d in result.deliveries) == [("chat", "production"), ("other", "canary")]


def test_retries_on_503_then_succeeds(repo, receiver):
    write_config(repo.root, receiver.url)
    receiver.script = [503, 503]
    sleeps = Sleeps()
    result = deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=sleeps)
    assert receiver.attempts == 3
    assert result.deliveries[0].attempts == 3 and result.deliveries[0].status == 200
    assert sleeps == [1.0, 2.0]  # exponential backoff
    assert len(receiver.accepted) == 1
    # one delivery id across retries, a fresh signature each time
    ids = {h["X-Gitops-Delivery"] for h, _ in receiver.requests}
    assert len(ids) == 1


def test_gives_up_after_retries_with_clear_error(repo, receiver):
    write_config(repo.root, receiver.url, retries=2)
    receiver.script = [502] * 10
    sleeps = Sleeps()
    with pytest.raises(DeployFailed) as err:
        deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=sleeps)
    assert receiver.attempts == 3 and sleeps == [1.0, 2.0]
    message = str(err.value)
    host = receiver.url.split("/")[2]
    assert "hook 'prod'" in message and host in message and "HTTP 502" in message and "3 attempt" in message
    assert "/hooks/deploy" not in message  # the URL path may hold a token: only the host is shown


def test_4xx_is_not_retried(repo, receiver):
    write_config(repo.root, receiver.url)
    receiver.secret = "the-receiver-has-another-secret"
    sleeps = Sleeps()
    with pytest.raises(DeployFailed, match="HTTP 401"):
        deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=sleeps)
    assert receiver.attempts == 1 and sleeps == []
    assert "does not match" in receiver.rejected[0]


def test_timeout_is_retried(repo, receiver):
    write_config(repo.root, receiver.url, timeout_s=0.5)
    receiver.script = ["sleep"]
    sleeps = Sleeps()
    result = deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=sleeps)
    assert result.deliveries[0].attempts == 2 and result.deliveries[0].ok
    assert sleeps == [1.0]
    assert receiver.accepted[0]["version"] == "v3"


def test_connection_refused_is_retried_then_fails(repo):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_config(repo.root, f"http://127.0.0.1:{port}/x", retries=2)
    sleeps = Sleeps()
    with pytest.raises(DeployFailed, match=r"cannot connect to 127.0.0.1"):
        deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=sleeps)
    assert sleeps == [1.0, 2.0]


def test_dry_run_sends_nothing(repo, receiver):
    write_config(repo.root, receiver.url)
    result = deploy(Workspace(repo.root), repo.base, repo.head, dry_run=True, env={}, sleep=Sleeps())
    assert receiver.attempts == 0
    assert result.dry_run and [r.sent for r in result.deliveries] == [False]
    assert result.payloads[0]["version"] == "v3"


def test_missing_secret_sends_nothing(repo, receiver):
    write_config(repo.root, receiver.url)
    with pytest.raises(DeployError, match="TEST_DEPLOY_SECRET"):
        deploy(Workspace(repo.root), repo.base, repo.head, env={}, sleep=Sleeps())
    assert receiver.attempts == 0


def test_payload_template(repo, receiver):
    template = {"service": "chat-api", "image": "{model}:{version}", "from": "{previous_version}",
                "meta": {"sha": "{commit}", "quant": "{quantization}"}, "tags": ["{alias}"]}
    write_config(repo.root, receiver.url, payload=template)
    deploy(Workspace(repo.root), repo.base, repo.head, env=ENV, sleep=Sleeps())
    assert receiver.accepted == [{"service": "chat-api", "image": "chat:v3", "from": "v1",
                                  "meta": {"sha": repo.head, "quant": "int8"}, "tags": ["production"]}]


def test_cli_dry_run_and_send(repo, receiver, monkeypatch):
    write_config(repo.root, receiver.url)
    monkeypatch.chdir(repo.root)
    runner = CliRunner()
    out = runner.invoke(main, ["deploy", "--base", repo.base, "--head", repo.head, "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "would POST chat@production: v1 -> v3" in out.output and receiver.attempts == 0
    monkeypatch.setenv("TEST_DEPLOY_SECRET", SECRET)
    out = runner.invoke(main, ["deploy", "--base", repo.base, "--head", repo.head, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["deliveries"][0]["status"] == 200 and receiver.accepted


def test_cli_failure_exit_code(repo, receiver, monkeypatch):
    write_config(repo.root, receiver.url)
    receiver.script = [400]
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("TEST_DEPLOY_SECRET", SECRET)
    out = CliRunner().invoke(main, ["deploy", "--base", repo.base, "--head", repo.head])
    assert out.exit_code == 1
    assert "hook 'prod'" in out.output and "HTTP 400" in out.output


def test_nothing_moved(repo, receiver):
    write_config(repo.root, receiver.url)
    result = deploy(Workspace(repo.root), repo.head, repo.head, env=ENV, sleep=Sleeps())
    assert result.deliveries == [] and receiver.attempts == 0


def test_bad_config_points_at_the_line(repo, receiver, monkeypatch):
    (repo.root / "gitops.yaml").write_text("deploy:\n  hooks:\n    - name: prod\n      url: ftp://x\n")
    monkeypatch.chdir(repo.root)
    out = CliRunner().invoke(main, ["deploy", "--base", repo.base, "--head", repo.head, "--dry-run"])
    assert out.exit_code == 1
    assert "gitops.yaml:4: deploy.hooks[0].url" in out.output and receiver.attempts == 0


def test_a_branch_creating_push_deploys_every_hooked_alias(repo, receiver):
    """GitHub sends `before` = 40 zeros when a push creates the branch: everything at head is new."""
    write_config(repo.root, receiver.url, models=None, aliases=["production"])
    result = deploy(Workspace(repo.root), "0" * 40, repo.head, env=ENV, sleep=Sleeps())
    sent = sorted((p["model"], p["alias"], p["version"], p["previous_version"]) for p in receiver.accepted)
    assert sent == [("chat", "production", "v3", None), ("other", "production", "v1", None)]
    assert result.base == "0" * 40


def test_a_hook_without_models_fires_only_for_protected_aliases(repo, receiver):
    """Issue 17, hole 5: a pull request adds model ``evil`` whose ``production`` is not protected (so it
    needs no approval); a hook that names no models must not POST ``evil@production`` to the production
    endpoint. A protected alias still fires it, and a hook that names the model fires for it regardless."""
    from tests.deploy_fixtures import commit, write_model

    write_config(repo.root, receiver.url, models=None)
    write_model(repo.root, "evil", 1, {"production": "v1"})
    model_yaml = repo.root / "registry" / "evil" / "model.yaml"
    model_yaml.write_text(model_yaml.read_text().replace("protected:\n  production: ['@acme/mlops']\n", ""))
    head = commit(repo.root, "a new model with an unprotected production")
    result = deploy(Workspace(repo.root), repo.base, head, env=ENV, sleep=Sleeps())
    assert sorted((p["model"], p["alias"]) for p in receiver.accepted) == [("chat", "production")]
    assert "evil@production" in result.unprotected and "evil@production" not in result.unhooked
    res = CliRunner().invoke(main, ["deploy", "--base", repo.base, "--head", head, "--dry-run", "-C", str(repo.root)],
                             env=ENV)
    assert res.exit_code == 0, res.output
    assert "evil@production moved, but it is not protected and no deploy hook names model 'evil'" in res.output
    write_config(repo.root, receiver.url, models=["chat", "evil"])
    result = deploy(Workspace(repo.root), repo.base, head, env=ENV, dry_run=True)
    assert sorted((d.model, d.alias) for d in result.deliveries) == [("chat", "production"), ("evil", "production")]
