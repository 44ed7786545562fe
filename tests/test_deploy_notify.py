"""notify(): {"text": ...} to a Slack-compatible webhook, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from click.testing import CliRunner

from gitops.cli import main
from gitops.core.settings import NotifyConfig
from gitops.deploy import notify
from gitops.errors import DeployError
from tests.deploy_fixtures import git

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")


@pytest.fixture
def slack():
    received: list = []
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status[0])
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/token", received, status
    server.shutdown()
    server.server_close()


CFG = NotifyConfig(slack_webhook_env="TEST_SLACK_URL", on=["deploy"])


def test_sends_text(slack):
    url, received, _ = slack
    result = notify(None, "v3 is live", config=CFG, env={"TEST_SLACK_URL": url})
    assert result.sent and received == [{"text": "v3 is live"}]
    assert "token" not in result.reason


def test_not_configured_is_a_noop(slack):
    _, received, _ = slack
    assert not notify(None, "x", config=NotifyConfig(), env={}).sent
    assert "not set" in notify(None, "x", config=CFG, env={}).reason
    assert "are off" in notify(None, "x", config=CFG, event="report", env={"TEST_SLACK_URL": slack[0]}).reason
    assert received == []


def test_refused_raises_without_leaking_the_url(slack):
    url, _, status = slack
    status[0] = 403
    with pytest.raises(DeployError, match="HTTP 403") as err:
        notify(None, "x", config=CFG, env={"TEST_SLACK_URL": url})
    assert "token" not in str(err.value)


def test_cli_notify(slack, tmp_path, monkeypatch):
    url, received, _ = slack
    git(tmp_path, "init", "-q")
    (tmp_path / "gitops.yaml").write_text("notify:\n  slack_webhook_env: TEST_SLACK_URL\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEST_SLACK_URL", url)
    out = CliRunner().invoke(main, ["notify", "--text", "hello"])
    assert out.exit_code == 0, out.output
    assert received == [{"text": "hello"}] and "sent to 127.0.0.1" in out.output
    monkeypatch.delenv("TEST_SLACK_URL")
    out = CliRunner().invoke(main, ["notify", "--text", "hello"])
    assert out.exit_code == 0 and "not set" in out.output
