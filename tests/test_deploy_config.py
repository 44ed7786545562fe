"""deploy: and notify: in gitops.yaml: validation with file:line messages."""

from __future__ import annotations

import pytest

from gitops import yamlio
from gitops.core.settings import parse_deploy, parse_notify
from gitops.validation import Problems

GOOD = """\
deploy:
  hooks:
    - name: prod-endpoint
      url: https://deploy.example.com/hooks
      models: [review-autocomplete]
      aliases: [production]
      secret_env: GITOPS_DEPLOY_SECRET
      payload: {model: "{model}", v: "{version}"}
      timeout_s: 5
      retries: 2
notify:
  slack_webhook_env: SLACK_WEBHOOK_URL
  on: [deploy]
"""


def parse(text: str):
    p = Problems()
    doc = yamlio.loads(text, "gitops.yaml")
    return parse_deploy(doc, "gitops.yaml", p), parse_notify(doc, "gitops.yaml", p), p


def test_good_config():
    deploy, notify, p = parse(GOOD)
    assert p == []
    (hook,) = deploy.hooks
    assert (hook.name, hook.models, hook.aliases, hook.timeout_s, hook.retries) == (
        "prod-endpoint", ["review-autocomplete"], ["production"], 5.0, 2)
    assert hook.wants("review-autocomplete", "production") and not hook.wants("other", "production")
    assert hook.host == "deploy.example.com"
    assert notify.slack_webhook_env == "SLACK_WEBHOOK_URL" and notify.on == ["deploy"]


def test_defaults():
    deploy, notify, p = parse("deploy:\n  hooks:\n    - {name: a, url: 'http://h:8080/x'}\n")
    assert p == [] and deploy.hooks[0].aliases == ["production"] and deploy.hooks[0].models is None
    assert deploy.hooks[0].secret_env == "GITOPS_DEPLOY_SECRET" and notify.slack_webhook_env is None


@pytest.mark.parametrize("hook, expected", [
    ("{name: a, url: 'ftp://h/x'}", "gitops.yaml:3: deploy.hooks[0].url 'ftp://h/...' must be an http"),
    ("{name: a, url: 'https://u:pw@h/x'}", "must not carry a password"),
    ("{name: a, url: 'https://h', secret: abc}", "never write a secret into gitops.yaml"),
    ("{name: a, url: 'https://h', secret_env: 'not a name'}", "secret_env must be an environment variable"),
    ("{name: a, url: 'https://h', retries: -1}", "retries must be a whole number from 0 to 20"),
    ("{name: a, url: 'https://h', timeout_s: 'x'}", "timeout_s must be a number"),
    ("{name: a, url: 'https://h', aliases: [v3]}", "shaped like a version id"),
    ("{name: a, url: 'https://h', payload: {x: '{nope}'}}", "'{nope}' is not a placeholder"),
    ("{name: a, url: 'https://h', payload: {x: '{model'}}", "write '{{' for a literal brace"),
    ("{name: a, url: 'https://h', colour: red}", "unknown key 'colour'"),
    ("{url: 'https://h'}", "missing the required key 'name'"),
])
def test_bad_hooks_point_at_the_line(hook, expected):
    _, _, p = parse(f"deploy:\n  hooks:\n    - {hook}\n")
    assert any(expected in problem for problem in p), p
    assert all(problem.startswith("gitops.yaml:") for problem in p)


def test_duplicate_hook_names():
    _, _, p = parse("deploy:\n  hooks:\n    - {name: a, url: 'https://h'}\n    - {name: a, url: 'https://i'}\n")
    assert p == ["gitops.yaml:4: deploy.hooks[1]: the hook name 'a' is used twice"]


def test_bad_notify():
    _, _, p = parse("notify:\n  slack_webhook_env: https://hooks.slack.com/x\n  on: [lunch]\n")
    assert len(p) == 2
    assert "gitops.yaml:2: notify.slack_webhook_env must be the NAME" in p[0]
    assert "gitops.yaml:3: notify.on must be a list of: deploy, report" in p[1]


def test_a_workspace_reads_the_settings_it_committed(gitops_repo):
    """``Workspace.commit`` drops the settings memo: a verb that commits a deploy hook (the demo
    does) sees it through the same Workspace, without building a second one."""
    from gitops import yamlio
    from gitops.core.workspace import Workspace

    ws = Workspace(gitops_repo)
    assert ws.settings.deploy.hooks == []
    doc = yamlio.plain(yamlio.load_file(gitops_repo / "gitops.yaml")) or {}
    doc["deploy"] = {"hooks": [{"name": "local", "url": "http://127.0.0.1:9/hooks/deploy", "models": ["m"]}]}
    yamlio.dump_file(gitops_repo / "gitops.yaml", doc)
    ws.commit(["gitops.yaml"], "gitops.yaml: a deploy hook")
    assert [h.name for h in ws.settings.deploy.hooks] == ["local"]
