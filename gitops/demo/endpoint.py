"""The demo's last act: a live endpoint that follows ``production`` through a deploy webhook.

After the loop has built and evaluated a candidate, :func:`serve_and_promote` does on the demo
repository what a team does in production, on one machine:

1. commits a deploy hook to ``gitops.yaml`` pointing at a local ``gitops serve``;
2. starts ``gitops serve MODEL@production`` (the same wiring as the CLI: the registry-backed
   source, the signed deploy hook, the durable delivery store) on a free port of 127.0.0.1;
3. asks it the seed's prompt over HTTP, as any OpenAI-style client would;
4. promotes the candidate (a commit moving ``production``), runs ``gitops deploy`` for that commit
   (a signed webhook to the server, which reads the registry at the commit, pulls, verifies the md5
   and swaps);
5. asks again and stops the server.

It works for any base: the server loads whatever the registry says (a LoRA version on its base, an
hf or a CTranslate2 version). The secret is random and lives only in this process.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitops import yamlio
from gitops.core import refs
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, DeployError

PROMPT = "The chocolate tour was excellent,"
HOOK = "demo-endpoint"
SECRET_ENV = "GITOPS_DEMO_DEPLOY_SECRET"  # names the secret in gitops.yaml; its value never leaves this process
MAX_TOKENS = 16
LOAD_WAIT_S = 120.0  # the hook answers once the new version serves (a load on a slow CPU included)


@dataclass(frozen=True)
class Completion:
    """One answer of the live endpoint: the version that produced it (``X-Gitops-Version``) and the text."""

    version: str
    md5: str
    text: str


@dataclass(frozen=True)
class EndpointAct:
    """What the demo's endpoint showed: the answer before and after the promotion, and the deploy."""

    url: str
    prompt: str
    before: Completion
    after: Completion
    promoted: str  # "review-autocomplete@production: v1 -> v3"
    delivered: str  # "HTTP 200 deployed, 1 attempt(s)"


def serve_and_promote(ws: Workspace, model: str, candidate: str, *,
                      say: Callable[[str], None] = lambda _msg: None) -> EndpointAct:
    """Serve ``model@production``, promote ``candidate`` (a version id or an alias) with a deploy
    webhook to the server, and return both answers; the server is stopped before returning."""
    from gitops.deploy.webhooks import deploy
    from gitops.registry.alias import set_alias
    from gitops.serve.launch import ServeOptions, prepare
    from gitops.serve.server import ServerThread

    version_id = ws.registry().resolve(refs.RefSpec(model, candidate))[1].id
    if ws.registry().resolve(refs.RefSpec(model, "production"))[1].id == version_id:
        raise ConfigError(f"{model}@production is already {version_id}; there is nothing to promote")
    port = _free_port()
    _add_hook(ws, model, f"http://127.0.0.1:{port}/hooks/deploy")
    secret = secrets.token_hex(16)
    state = Path(tempfile.mkdtemp(prefix="gitops-demo-serve-"))  # the server's worktree and delivery record
    options = ServeOptions(port=port, secret=secret, hook_wait_s=LOAD_WAIT_S, state_dir=state)
    serving = prepare(ws, f"{model}@production", options)
    try:
        with ServerThread(serving.app, port=port) as server:
            say(f"Serving {model}@production on {server.url}/v1 (gitops serve)")
            if not server.wait_ready(LOAD_WAIT_S):
                raise DeployError(f"gitops serve on {server.url} did not become ready; see /readyz")
            before = _ask(server.url, model)
            base = ws.git.resolve("HEAD")
            change = set_alias(ws, model, "production", version_id)
            promoted = f"{model}@production: {change.old} -> {change.new}"
            say(f"Promoting {promoted}, then gitops deploy (a signed webhook to the server)")
            result = deploy(ws, base, change.commit or base, env={SECRET_ENV: secret})
            sent = [r for r in result.deliveries if r.hook == HOOK]
            if not sent or not sent[0].ok:
                raise DeployError(f"the deploy webhook to {server.url} was not delivered")
            delivered = f"HTTP {sent[0].status} {sent[0].answer or ''}".rstrip() + f", {sent[0].attempts} attempt(s)"
            after = _ask(server.url, model)
    finally:
        serving.close()
        shutil.rmtree(state, ignore_errors=True)
        ws.git.run("worktree", "prune")
    return EndpointAct(f"http://127.0.0.1:{port}/v1", PROMPT, before, after, promoted, delivered)


def serve_available() -> bool:
    """Whether the serve extra (starlette, uvicorn, prometheus-client) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn", "prometheus_client"))


def _add_hook(ws: Workspace, model: str, url: str) -> None:
    """Commit a deploy hook for ``model@production`` to ``url`` into ``gitops.yaml``."""
    path = ws.root / "gitops.yaml"
    settings = yamlio.plain(yamlio.load_file(path)) if path.is_file() else {}
    settings = settings if isinstance(settings, dict) else {}
    hooks = [h for h in (settings.get("deploy") or {}).get("hooks") or [] if h.get("name") != HOOK]
    hooks.append({"name": HOOK, "url": url, "models": [model], "aliases": ["production"], "secret_env": SECRET_ENV,
                  "timeout_s": LOAD_WAIT_S + 30, "retries": 2})
    settings["deploy"] = {**(settings.get("deploy") or {}), "hooks": hooks}
    yamlio.dump_file(path, settings)
    ws.commit(["gitops.yaml"], f"gitops.yaml: a deploy hook for the demo's local endpoint ({url})")


def _ask(url: str, model: str) -> Completion:
    """``POST /v1/completions`` with the seed's prompt (greedy, so the answer is the model's own)."""
    import json

    from gitops.adapters import http

    body = json.dumps({"model": model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}).encode()
    resp = http.post(f"{url}/v1/completions", body, {"Content-Type": "application/json"}, LOAD_WAIT_S,
                     max_text=http.MAX_GET_TEXT)
    if resp.status != 200:
        raise DeployError(f"the endpoint {url} answered HTTP {resp.status}: {resp.text[:200]}")
    answer = json.loads(resp.text)
    label, _, md5 = resp.header("X-Gitops-Version").partition("; md5=")
    return Completion(label or answer.get("model", "?"), md5, answer["choices"][0]["text"])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
