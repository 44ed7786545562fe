"""Fixtures for the deploy tests: a real temp git registry and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import http.server
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitops.deploy import ReplayCache, WebhookRejected, verify

SECRET = "s3cret-for-tests"
DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy-webhooks.md"

MODEL_YAML = """\
name: {name}
description: test model
owners: ['@acme/ml']
protected:
  production: ['@acme/mlops']
versions:
{versions}"""

VERSION = """\
  {vid}:
    format: {fmt}
    path: models/{name}/{vid}
    md5: {md5}.dir
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def write_model(root: Path, name: str, n_versions: int, aliases: dict[str, str]) -> None:
    versions = "".join(VERSION.format(vid=f"v{i}", name=name, md5=f"{i:032x}", fmt="ct2" if i == 3 else "hf")
                       for i in range(1, n_versions + 1))
    if n_versions >= 3:  # v3 is a quantized CTranslate2 conversion
        versions = versions.replace("format: ct2\n", "format: ct2\n    quantization: int8\n")
    model_dir = root / "registry" / name
    (model_dir / "aliases").mkdir(parents=True, exist_ok=True)
    (model_dir / "model.yaml").write_text(MODEL_YAML.format(name=name, versions=versions))
    for alias_file in (model_dir / "aliases").glob("*.yaml"):
        if alias_file.stem not in aliases:
            alias_file.unlink()
    for alias, version in aliases.items():
        (model_dir / "aliases" / f"{alias}.yaml").write_text(f"version: {version}\nnote: test\n")


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own HOME and git identity; a module opts in with ``pytest.mark.usefixtures("_isolated_git")``."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)


@dataclass
class Repo:
    root: Path
    base: str
    head: str


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """base: chat@production=v1, chat@staging=v1, other@production=v1.
    head: chat@production=v3 (moved), chat@staging=v2 (moved), other@production unchanged,
    other@canary=v2 (new alias), chat@beta removed."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_model(root, "chat", 3, {"production": "v1", "staging": "v1", "beta": "v1"})
    write_model(root, "other", 2, {"production": "v1"})
    base = commit(root, "base")
    write_model(root, "chat", 3, {"production": "v3", "staging": "v2"})
    write_model(root, "other", 2, {"production": "v1", "canary": "v2"})
    head = commit(root, "move aliases")
    return Repo(root, base, head)


def write_config(root: Path, url: str, **hook: object) -> None:
    """gitops.yaml with one hook 'prod' on chat@production plus ``hook`` overrides."""
    import yaml

    entry = {"name": "prod", "url": url, "models": ["chat"], "aliases": ["production"],
             "secret_env": "TEST_DEPLOY_SECRET", "timeout_s": 2, "retries": 3, **hook}
    (root / "gitops.yaml").write_text(yaml.safe_dump({"github": {"repo": "acme/models"},
                                                      "deploy": {"hooks": [entry]}}, sort_keys=False))


@dataclass
class Receiver:
    """A webhook receiver that verifies every request with :func:`gitops.deploy.verify`.

    ``script`` lists what to do with each incoming request in turn: an HTTP status to answer
    before verifying (simulating a proxy/overloaded app), ``"sleep"`` (hang past the client's
    timeout, then verify), or ``"ok"`` (verify and answer 200, or the rejection's status).
    After the script runs out every request is ``"ok"``.
    """

    url: str
    script: list = field(default_factory=list)
    attempts: int = 0
    accepted: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    seen: ReplayCache = field(default_factory=ReplayCache)
    secret: str = SECRET
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.attempts += 1
                action = state.script.pop(0) if state.script else "ok"
                state.requests.append((dict(self.headers), body))
            if isinstance(action, int):
                return self._answer(action, b"try later")
            if action == "sleep":
                time.sleep(1.5)
            try:
                payload = verify(self.headers, body, state.secret, seen=state.seen)
            except WebhookRejected as exc:
                state.rejected.append(str(exc))
                return self._answer(exc.status, str(exc).encode())
            state.accepted.append(payload)
            self._answer(200, b"deployed")

        def _answer(self, status: int, text: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/deploy")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def receiver_example() -> tuple[str, str]:
    """The receiver example of docs/deploy-webhooks.md: its code but the last line, and that line
    (which starts serving forever)."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    lines = code.strip().splitlines()
    return "\n".join(lines[:-1]) + "\n", lines[-1]
