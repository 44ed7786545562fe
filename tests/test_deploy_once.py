"""Deploys happen once, end to end: stable delivery ids, a receiver that remembers them across a
restart, and a sender that reports success only on a 2xx.

The receiver here is the documented example (docs/deploy-webhooks.md), run as it is written: in its
own process (restarted between attempts) or in a thread (its first attempt slow and failing).
``gitops deploy`` runs as a real process, so its exit code is the one a workflow sees.
"""

from __future__ import annotations

import builtins
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gitops.core.workspace import Workspace
from gitops.deploy import DeliveryStore, DeployFailed, deploy, plan, stable_delivery_id
from gitops.errors import DeployError
from tests.deploy_fixtures import SECRET, commit, receiver_example, write_config, write_model

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")

ROOT = Path(__file__).resolve().parents[1]
LATE_ANSWER = """
import os as _os, time as _time
if _os.environ.get("LATE_ANSWER"):  # the answer is lost: it comes after the sender gave up
    _send = Hook.send_response
    def _late(self, code, message=None):
        with open(_os.environ["LATE_ANSWER"], "a") as fh:
            fh.write(f"{code}\\n")
        _time.sleep(60)
        _send(self, code, message)
    Hook.send_response = _late
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GITOPS_DEPLOY_SECRET": SECRET, **extra}


def start_receiver(script: Path, cwd: Path, port: int, **extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-u", str(script)], cwd=cwd, env=env(**extra), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)


def gitops_deploy(repo) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gitops", "deploy", "--base", repo.base, "--head", repo.head],
                            cwd=repo.root, env=env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_receiver_restarted_between_attempts_deploys_once(repo, tmp_path):
    """Attempt 1 deploys, but its answer never reaches the sender (timeout); the receiver restarts;
    the retry is answered from the durable record: one deploy, and ``gitops deploy`` exits 0."""
    code, last = receiver_example()
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(code + LATE_ANSWER + last.replace("8000", str(port)) + "\n")
    write_config(repo.root, f"http://127.0.0.1:{port}/hooks", secret_env="GITOPS_DEPLOY_SECRET", timeout_s=1,
                 retries=4)
    mark = tmp_path / "answered"
    first = start_receiver(script, tmp_path, port, LATE_ANSWER=str(mark))
    sender = gitops_deploy(repo)
    deadline = time.monotonic() + 30
    while not (mark.is_file() and mark.read_text().strip()):
        assert time.monotonic() < deadline and sender.poll() is None, "the first attempt never got an answer"
        time.sleep(0.02)
    first.kill()  # restart the receiver between the attempts
    first_out = first.communicate()[0]
    second = start_receiver(script, tmp_path, port)
    try:
        out = sender.communicate(timeout=90)[0]
    finally:
        second.terminate()
    second_out = second.communicate()[0]
    assert sender.returncode == 0, out
    assert "delivered chat@production: v1 -> v3" in out
    assert (first_out + second_out).count("deploy chat v3") == 1, (first_out, second_out)


def test_a_slow_first_attempt_that_fails_is_deployed_by_a_retry(repo, tmp_path, monkeypatch):
    """Attempt 1 runs past the sender's timeout and then fails; the retry meanwhile must not count
    as delivered: a later attempt deploys, once, and only then ``gitops deploy`` exits 0."""
    code, last = receiver_example()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITOPS_DEPLOY_SECRET", SECRET)
    deployed: list[tuple] = []

    def deploy_action_print(*args, **kwargs):  # the example's action prints "deploy MODEL VERSION"
        if args and args[0] == "deploy":
            if not deployed and not getattr(deploy_action_print, "failed", False):
                deploy_action_print.failed = True
                time.sleep(3)  # past the sender's 1 s timeout, while its retry arrives
                raise OSError("the deploy target went away")
            deployed.append(args)
        builtins.print(*args, **kwargs)

    namespace: dict = {"__name__": "receiver_example", "print": deploy_action_print}
    exec(code, namespace)
    server_class = namespace[last.split("(", 1)[0]]  # the server the example starts
    server = server_class(("127.0.0.1", 0), namespace["Hook"])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    write_config(repo.root, f"http://127.0.0.1:{server.server_address[1]}/hooks", secret_env="GITOPS_DEPLOY_SECRET",
                 timeout_s=1, retries=4)
    try:
        sender = gitops_deploy(repo)
        out = sender.communicate(timeout=90)[0]
    finally:
        server.shutdown()
        server.server_close()
        namespace.get("STORE") and namespace["STORE"].close()
    assert deploy_action_print.failed
    assert sender.returncode == 0, out
    assert deployed == [("deploy", "chat", "v3")]
    assert "HTTP 200" in out and "attempt(s)" in out and "1 attempt(s)" not in out


def test_409_is_never_success(repo, receiver):
    """A receiver that says "in progress" (even after a failed first attempt) was not delivered to,
    however often it says it."""
    write_config(repo.root, receiver.url, retries=3)
    receiver.script = [503] + [409] * 10
    waits: list[float] = []
    with pytest.raises(DeployFailed, match="HTTP 409") as err:
        deploy(Workspace(repo.root), repo.base, repo.head, env={"TEST_DEPLOY_SECRET": SECRET}, sleep=waits.append)
    assert receiver.attempts == 4 and waits == [1.0, 2.0, 4.0]
    assert err.value.result.deliveries[0].ok is False


def test_409_then_2xx_is_delivered_after_waiting(repo, receiver):
    write_config(repo.root, receiver.url)
    receiver.script = [409, 409]
    waits: list[float] = []
    result = deploy(Workspace(repo.root), repo.base, repo.head, env={"TEST_DEPLOY_SECRET": SECRET},
                    sleep=waits.append)
    assert result.deliveries[0].status == 200 and result.deliveries[0].attempts == 3 and waits == [1.0, 2.0]
    assert len({h["X-Gitops-Delivery"] for h, _ in receiver.requests}) == 1


def test_delivery_ids_are_stable_per_hook_model_alias_version_and_commit(repo):
    write_config(repo.root, "http://127.0.0.1:9/hooks")
    ws = Workspace(repo.root)
    _, first = plan(ws, repo.base, repo.head, ws.settings.deploy.hooks)
    _, again = plan(Workspace(repo.root), repo.base, repo.head, ws.settings.deploy.hooks)  # a re-run
    (d,) = first
    assert d.delivery_id == again[0].delivery_id == d.payload["delivery"]
    assert d.delivery_id == stable_delivery_id("prod", "chat", "production", "v3", repo.head)
    others = {stable_delivery_id(*args) for args in [
        ("other-hook", "chat", "production", "v3", repo.head), ("prod", "other", "production", "v3", repo.head),
        ("prod", "chat", "staging", "v3", repo.head), ("prod", "chat", "production", "v2", repo.head),
        ("prod", "chat", "production", "v3", repo.base)]}
    assert len(others) == 5 and d.delivery_id not in others
    # the same version reached again by a later commit (v3 -> v1 -> v3) is a new delivery
    write_model(repo.root, "chat", 3, {"production": "v1"})
    back = commit(repo.root, "roll back")
    write_model(repo.root, "chat", 3, {"production": "v3"})
    forward = commit(repo.root, "forward again")
    _, later = plan(Workspace(repo.root), back, forward, ws.settings.deploy.hooks)
    assert later[0].version == "v3" and later[0].delivery_id != d.delivery_id


def test_the_store_remembers_across_reopening_and_clears_what_a_dead_process_left(tmp_path):
    path = tmp_path / "state" / "deliveries.sqlite"
    store = DeliveryStore(path)
    assert store.begin("a").state == "new" and store.begin("a").state == "running"
    store.finish("a", {"version": "v3"})
    assert store.begin("b").state == "new"  # b is left running: its process dies now
    with pytest.raises(DeployError, match="another process"):
        DeliveryStore(path)  # one receiver per store
    store.close()
    reopened = DeliveryStore(path)
    done = reopened.begin("a")
    assert (done.state, done.record) == ("done", {"version": "v3"})
    assert reopened.begin("b").state == "new"  # the dead process's claim was cleared
    reopened.release("b")
    assert reopened.state("b") == "new"
    answers = [reopened.deliver("c", lambda: None), reopened.deliver("c", lambda: None)]
    assert [(a.status, a.message) for a in answers] == [(200, "deployed"), (200, "already deployed")]
    failed = reopened.deliver("d", lambda: 1 / 0)
    assert failed.status == 500 and "ZeroDivisionError" in failed.message and reopened.state("d") == "new"
    for bad in ("", "x" * 201, "a\nb"):
        with pytest.raises(DeployError, match="delivery id"):
            reopened.begin(bad)
    reopened.close()


def test_the_store_keeps_the_newest_completed_deliveries(tmp_path):
    with DeliveryStore(tmp_path / "d.sqlite", keep=3) as store:
        for i in range(6):
            store.finish(f"id-{i}")
            time.sleep(0.002)
        assert [store.state(f"id-{i}") for i in range(6)] == ["new"] * 3 + ["done"] * 3
