"""The receiver example in docs/deploy-webhooks.md works against the real sender."""

from __future__ import annotations

import threading

import pytest

from gitops.core.workspace import Workspace
from gitops.deploy import deploy
from tests.deploy_fixtures import SECRET, receiver_example, write_config

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")


def test_receiver_example(repo, tmp_path, monkeypatch, capsys):
    code, last = receiver_example()
    assert last.startswith("ThreadingHTTPServer(")
    assert 10 <= len([ln for ln in code.splitlines() if ln.strip()]) <= 30
    monkeypatch.chdir(tmp_path)  # the example keeps its delivery store in the working directory
    namespace: dict = {"__name__": "receiver_example"}
    exec(code, namespace)  # everything but serve_forever()
    server = namespace["ThreadingHTTPServer"](("127.0.0.1", 0), namespace["Hook"])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        write_config(repo.root, f"http://127.0.0.1:{server.server_address[1]}/", secret_env="GITOPS_DEPLOY_SECRET")
        monkeypatch.setenv("GITOPS_DEPLOY_SECRET", SECRET)
        first = deploy(Workspace(repo.root), repo.base, repo.head, sleep=lambda s: None)
        again = deploy(Workspace(repo.root), repo.base, repo.head, sleep=lambda s: None)  # a re-run of the workflow
    finally:
        server.shutdown()
        server.server_close()
        namespace["STORE"].close()
    assert first.deliveries[0].status == 200 and again.deliveries[0].status == 200
    assert first.deliveries[0].delivery_id == again.deliveries[0].delivery_id
    assert capsys.readouterr().out.count("deploy chat v3") == 1  # the re-run deployed nothing
    assert (tmp_path / "deliveries.sqlite").is_file()
