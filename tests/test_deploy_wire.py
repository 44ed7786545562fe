"""The webhook wire format, checked against the documentation rather than against gitops itself.

A plain ``http.server`` receiver on 127.0.0.1 records what ``gitops deploy`` (the CLI) really sends;
the test recomputes the signature with ``hmac``/``hashlib`` from the signed-message format written
in docs/deploy-webhooks.md. A sender that drifts from the documented format (another separator,
another hash, a header left out of the message) fails here even though its own verify() agrees.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import re
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import run_gitops
from tests.deploy_fixtures import SECRET, write_config

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy-webhooks.md"


def documented_message_format() -> str:
    """The one ```text block of the "Headers and signature" section: the signed message."""
    section = DOC.read_text(encoding="utf-8").split("## Headers and signature", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```text\n(.*?)\n```", section, re.DOTALL)
    return block


def documented_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """``v1=`` + HMAC-SHA256 over the documented message: ``\\n`` is a line feed, ``{Header}`` the
    header's value, ``{body}`` the raw body. Computed here, without gitops' own signing code."""
    template = documented_message_format()
    head, tail = template.split("{body}")
    assert tail == "", "the body is the last part of the signed message"
    text = re.sub(r"\{([A-Za-z-]+)\}", lambda m: headers[m.group(1)], head.replace("\\n", "\n"))
    table = DOC.read_text(encoding="utf-8")
    assert "| `X-Gitops-Signature` | `v1=` + hex HMAC-SHA256(secret, the signed message below) |" in table
    return "v1=" + hmac.new(secret.encode(), text.encode() + body, hashlib.sha256).hexdigest()


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 204 to everything and keeps the raw headers and body; verifies nothing itself."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder():
    Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/deploy", Recorder.received
    finally:
        server.shutdown()
        server.server_close()


def test_documented_format_is_the_one_line_the_receivers_implement():
    assert documented_message_format() == r"v1\n{X-Gitops-Timestamp}\n{X-Gitops-Delivery}\n{X-Gitops-Event}\n{body}"


def test_known_answer_vector():
    """A fixed vector, computed once outside Python:
    printf 'v1\\n1700000000\\n<id>\\nalias.moved\\n<body>' | openssl dgst -sha256 -hmac SECRET"""
    from gitops.deploy.signing import signature

    body = b'{"model":"chat","version":"v3"}'
    delivery = "6f1c2d3e-0000-4000-8000-000000000001"
    expected = "v1=d1a7c5b7aa1cea608ff248bf72b3e7b437ca28221674443d017c37e5273a0062"
    assert signature(SECRET, "1700000000", delivery, "alias.moved", body) == expected
    headers = {"X-Gitops-Timestamp": "1700000000", "X-Gitops-Delivery": delivery, "X-Gitops-Event": "alias.moved"}
    assert documented_signature(SECRET, headers, body) == expected


def test_what_gitops_deploy_sends_matches_the_documented_signature(repo, recorder, monkeypatch):
    url, received = recorder
    write_config(repo.root, url)
    monkeypatch.setenv("TEST_DEPLOY_SECRET", SECRET)
    before = int(time.time())
    result = run_gitops("deploy", "--base", repo.base, "--head", repo.head, "-C", str(repo.root))
    assert result.exit_code == 0, result.stderr
    ((headers, body),) = received
    assert headers["Content-Type"] == "application/json" and headers["X-Gitops-Event"] == "alias.moved"
    assert before - 1 <= int(headers["X-Gitops-Timestamp"]) <= time.time() + 1
    # a stable id (docs: uuid5 of hook, model, alias, version, head commit): a version-5 UUID
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        headers["X-Gitops-Delivery"])
    # the body: compact UTF-8 JSON whose delivery is the header's
    payload = json.loads(body)
    assert body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert payload["delivery"] == headers["X-Gitops-Delivery"] and payload["event"] == "alias.moved"
    assert headers["X-Gitops-Signature"] == documented_signature(SECRET, headers, body)
    # a different secret, or any header changed, gives another signature (the check has teeth)
    assert headers["X-Gitops-Signature"] != documented_signature("other", headers, body)
    for name in ("X-Gitops-Timestamp", "X-Gitops-Delivery", "X-Gitops-Event"):
        altered = {**headers, name: headers[name] + "0"}
        assert headers["X-Gitops-Signature"] != documented_signature(SECRET, altered, body), name
