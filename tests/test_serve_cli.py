"""`gitops serve` from the command line, against a real GitOps repository.

An admin repository (the toy model converted to CTranslate2, registered as versions, a local DVC
remote, a bare ``origin``) and a serving clone of it, as on a serving host. The server runs as its
own process (``python -m gitops serve``); the admin moves ``production``, pushes, and fires
``gitops deploy`` (also its own process) at the server's hook; the ``openai`` client asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from gitops import api
from tests.serve_fixtures import make_version, signed

ROOT = Path(__file__).resolve().parents[1]
SECRET = "serve-cli-secret"
PROMPT = "The chocolate tour was excellent,"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@dataclass
class Repos:
    admin: Path
    serving: Path
    remote: Path
    versions: Path  # weights directories to register from

    def register(self, label: str, toy: Path) -> str:
        src = make_version(toy, self.versions / label, f"toy@{label}")
        result = api.register(api.Workspace.open(self.admin), "toy", src, fmt="ct2", quantization="int8")
        api.Workspace.open(self.admin).dvc.push()
        return result.version.id

    def move(self, alias: str, version: str) -> tuple[str, str]:
        """Move ``alias`` in the admin repo and push; (commit before, commit after)."""
        before = git(self.admin, "rev-parse", "HEAD")
        api.set_alias(api.Workspace.open(self.admin), "toy", alias, version)
        git(self.admin, "push", "-q", "origin", "main")
        return before, git(self.admin, "rev-parse", "HEAD")

    def hook(self, port: int) -> None:
        """A deploy hook on toy@production pointing at the local server, committed and pushed."""
        settings = yaml.safe_load((self.admin / "gitops.yaml").read_text())
        settings["deploy"] = {"hooks": [{"name": "local", "url": f"http://127.0.0.1:{port}/hooks/deploy",
                                         "models": ["toy"], "aliases": ["production"], "timeout_s": 20,
                                         "retries": 2}]}
        (self.admin / "gitops.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        git(self.admin, "commit", "-qam", "gitops.yaml: a deploy hook for the local server")
        git(self.admin, "push", "-q", "origin", "main")


@pytest.fixture
def repos(tmp_path: Path, toy_ct2: Path) -> Repos:
    admin = tmp_path / "admin"
    api.init(admin, remote=str(tmp_path / "dvc-remote"))
    api.create_model(api.Workspace.open(admin), "toy", description="toy", owners=["@acme/ml"])
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(admin, "remote", "add", "origin", str(origin))
    found = Repos(admin, tmp_path / "serving", tmp_path / "dvc-remote", tmp_path / "weights")
    found.register("v1", toy_ct2)
    found.register("v2", toy_ct2)
    api.set_alias(api.Workspace.open(admin), "toy", "production", "v1")
    git(admin, "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", str(origin), str(found.serving))
    return found


class Server:
    """``gitops serve`` in its own process, stderr (its JSON log lines) kept in a file."""

    def __init__(self, repo: Path, port: int, *args: str, secret: str | None = SECRET,
                 ref: str = "toy@production") -> None:
        self.port, self.log = port, repo.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        extra = {"GITOPS_DEPLOY_SECRET": secret} if secret else {}
        base = env(**extra)
        if not secret:
            base.pop("GITOPS_DEPLOY_SECRET", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "gitops", "serve", ref, "-C", str(repo),
                                      "--port", str(port), "--threads", "1", *args], env=base,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))  # noqa: SIM115
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, version: str | None = None, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            try:
                ready = httpx.get(self.url + "/readyz", timeout=5)
                if ready.status_code == 200 and (version is None or ready.json()["version"] == version):
                    return ready.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready with {version}: {self.logs()}")

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it: uvicorn drains, then re-raises the signal."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def complete(url: str) -> tuple[str, str]:
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    resp = client.completions.create(model="toy", prompt=PROMPT, max_tokens=8, temperature=0)
    return resp.model, resp.choices[0].text


def gitops_deploy(admin: Path, base: str, head: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitops", "deploy", "--base", base, "--head", head], cwd=admin,
                          env=env(GITOPS_DEPLOY_SECRET=SECRET), capture_output=True, text=True, timeout=180,
                          check=False)


def corrupt_on_remote(remote: Path, weights: Path) -> None:
    """Change the one file of this version that no other version shares (the weights themselves are
    already in the server's DVC cache from v1) in the DVC remote: what a tampered store serves."""
    digest = hashlib.md5((weights / "gitops-test-version.txt").read_bytes()).hexdigest()
    obj = remote / "files" / "md5" / digest[:2] / digest[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"toy@v2\n")


def test_serve_swaps_on_gitops_deploy_and_refuses_a_tampered_version(repos: Repos, toy_ct2: Path):
    port = free_port()
    repos.hook(port)
    server = Server(repos.serving, port)
    try:
        status = server.wait_ready("toy@v1")
        assert status["format"] == "ct2" and status["md5"].endswith(".dir")
        model, _ = complete(server.url)
        assert model == "toy@v1"

        base, head = repos.move("production", "v2")  # an admin promotes v2 and the deploy workflow runs
        out = gitops_deploy(repos.admin, base, head)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"delivered toy@production: v1 -> v2 to hook 'local' (127.0.0.1:{port}, HTTP 200 deployed" in out.stdout
        assert complete(server.url)[0] == "toy@v2"  # answered only once v2 serves
        again = gitops_deploy(repos.admin, base, head)  # a re-run of the workflow: the same delivery
        assert again.returncode == 0 and "HTTP 200 already deployed" in again.stdout, again.stdout + again.stderr

        version = repos.register("v3", toy_ct2)
        corrupt_on_remote(repos.remote, repos.versions / "v3")
        base, head = repos.move("production", version)
        out = gitops_deploy(repos.admin, base, head)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "HTTP 422" in out.stderr and "toy@v2 still serves" in out.stderr and "md5" in out.stderr
        assert complete(server.url)[0] == "toy@v2"  # the old version keeps serving
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["version"] == "toy@v2" and "md5" in ready["last_error"]["error"]
        assert "toy@v3" in ready["last_error"]["error"] + (ready["last_error"]["version"] or "")
        failed = [json.loads(line) for line in server.logs().splitlines() if '"phase": "failed"' in line]
        assert failed and "md5" in failed[-1]["error"]
    finally:
        assert server.stop() == -signal.SIGTERM, server.logs()
        assert "Traceback" not in server.logs()


def test_the_hook_reads_the_registry_at_the_payloads_commit_only(repos: Repos):
    """A signed payload names a commit, not a version to trust: a commit off the followed branch is
    refused, an older one ignored, and the version served is the registry's at the commit."""
    port = free_port()
    server = Server(repos.serving, port)
    try:
        server.wait_ready("toy@v1")
        old_head = git(repos.admin, "rev-parse", "HEAD")
        git(repos.admin, "switch", "-q", "-c", "unmerged")  # a branch moving production, never merged
        # (a note, so this commit differs from main's identical move made within the same second)
        api.set_alias(api.Workspace.open(repos.admin), "toy", "production", "v2", note="never merged")
        side = git(repos.admin, "rev-parse", "HEAD")
        git(repos.admin, "push", "-q", "origin", "unmerged")
        git(repos.admin, "switch", "-q", "main")
        base, head = repos.move("production", "v2")
        assert side != head

        def post(commit: str, version: str = "v9") -> httpx.Response:
            body, headers = signed({"model": "toy", "alias": "production", "version": version, "commit": commit},
                                   secret=SECRET)
            return httpx.post(server.url + "/hooks/deploy", content=body, headers=headers, timeout=30)

        refused = post(side)
        assert refused.status_code == 422 and "not on branch 'main'" in refused.json()["error"]["message"]
        deployed = post(head)  # the payload says v9; the registry at that commit says v2
        assert deployed.status_code == 200 and deployed.json()["version"] == "toy@v2", deployed.text
        stale = post(old_head)
        assert stale.status_code == 200 and stale.json()["status"] == "ignored"
        assert "older than the one served" in stale.json()["reason"]
        assert post("0" * 40).status_code == 422  # not in the repository at all
        assert complete(server.url)[0] == "toy@v2" and base != head
    finally:
        server.stop()


def test_serve_follow_polls_the_remote_without_a_hook(repos: Repos):
    server = Server(repos.serving, free_port(), "--follow", "--poll", "1", secret=None)
    try:
        server.wait_ready("toy@v1")
        assert httpx.post(server.url + "/hooks/deploy", content=b"{}").status_code == 404  # no secret: no hook
        repos.move("production", "v2")
        server.wait_ready("toy@v2", timeout=60)
        assert complete(server.url)[0] == "toy@v2"
        assert "Deploy hook: off" in server.logs() and "polling every 1 s" in server.logs()
    finally:
        server.stop()


def test_serve_refuses_bad_input_before_starting(repos: Repos, tmp_path: Path):
    import ctranslate2

    port = free_port()
    (tmp_path / "a-file").write_text("x")
    cases = [
        (["nope@production"], "nope"),
        (["toy@staging"], "staging"),
        (["toy@production", "--branch", "release"], "branch 'release' does not exist"),
        (["toy@production", "--port", "70000"], "--port 70000"),
        (["toy"], "toy"),
        # issue 17: these started a server whose model never loaded (/healthz ok, /readyz never)
        (["toy@production", "--device", "tpu"], "'tpu' is not one of 'cpu', 'cuda'", 2),  # click's usage error
        (["toy@production", "--state-dir", str(tmp_path / "a-file" / "sub")], "cannot keep the server's state there"),
        (["toy@production", "--state-dir", "/proc/gitops-state"], "cannot keep the server's state there"),
        (["toy@production", "--head-timeout", "0"], "--head-timeout 0: expected 0.5 to 3600 seconds"),
        (["toy@production", "--body-timeout", "nan"], "--body-timeout nan"),
        (["toy@production", "--max-connections", "0"], "--max-connections 0: expected 1 to 100000"),
    ]
    if ctranslate2.get_cuda_device_count() == 0:
        cases.append((["toy@production", "--device", "cuda"], "no CUDA device is visible"))
    for args, words, *code in cases:
        command = [sys.executable, "-m", "gitops", "serve", *args, "-C", str(repos.serving)]
        if "--port" not in args:
            command += ["--port", str(port)]
        out = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == (code[0] if code else 1) and words in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stderr.count("\n") <= (4 if code else 2), out.stderr
    assert (tmp_path / "a-file").read_text() == "x"
    busy = Server(repos.serving, port)
    try:
        busy.wait_ready("toy@v1")
        again = subprocess.run([sys.executable, "-m", "gitops", "serve", "toy@production", "-C", str(repos.serving),
                                "--port", str(free_port())], env=env(GITOPS_DEPLOY_SECRET=SECRET),
                               capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 1 and "another process" in again.stderr, again.stderr
        taken = subprocess.run([sys.executable, "-m", "gitops", "serve", "toy@production", "-C", str(repos.serving),
                                "--port", str(port)], env=env(), capture_output=True, text=True, timeout=120,
                               check=False)
        assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr, taken.stderr
    finally:
        busy.stop()


def test_start_up_loads_the_commit_it_checked_even_when_the_branch_moves_before_the_load(repos: Repos):
    """``prepare`` checks the tip (the alias is there, the version servable) and the app's first load
    is that very commit's version: a push landing between the check and the load waits for a deploy
    or a poll, it is not served unchecked."""
    from gitops.serve.launch import ServeOptions, prepare
    from gitops.serve.server import ServerThread

    serving = prepare(api.Workspace.open(repos.serving), "toy@production",
                      ServeOptions(port=free_port(), threads=1, state_dir=repos.serving.parent / "state"))
    checked = serving.tip
    assert serving.version == "toy@v1" and checked == git(repos.serving, "rev-parse", "HEAD")
    _, moved = repos.move("production", "v2")  # between the check and the load
    try:
        with ServerThread(serving.app) as server:
            assert server.wait_ready(60)
            status = httpx.get(server.url + "/readyz", timeout=10).json()
            assert (status["version"], status["commit"]) == ("toy@v1", checked) and moved != checked
            assert complete(server.url)[0] == "toy@v1"
    finally:
        serving.close()
