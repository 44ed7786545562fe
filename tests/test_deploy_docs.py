"""The receiver example in docs/deploy-webhooks.md works against the real sender."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from gitops.core.workspace import Workspace
from gitops.deploy import deploy
from tests.deploy_fixtures import SECRET, _isolated_git, repo, write_config  # noqa: F401

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy-webhooks.md"


def test_receiver_example(repo, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    lines = code.strip().splitlines()
    assert 10 <= len([ln for ln in lines if ln.strip()]) <= 20
    assert lines[-1].startswith("HTTPServer(")
    namespace: dict = {"__name__": "receiver_example"}
    exec("\n".join(lines[:-1]), namespace)  # everything but serve_forever()
    server = namespace["HTTPServer"](("127.0.0.1", 0), namespace["Hook"])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        write_config(repo.root, f"http://127.0.0.1:{server.server_address[1]}/", secret_env="GITOPS_DEPLOY_SECRET")
        monkeypatch.setenv("GITOPS_DEPLOY_SECRET", SECRET)
        result = deploy(Workspace(repo.root), repo.base, repo.head, sleep=lambda s: None)
    finally:
        server.shutdown()
        server.server_close()
    assert result.deliveries[0].status == 204
    assert "deploy chat v3" in capsys.readouterr().out
