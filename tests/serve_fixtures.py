"""Fixtures for the serving tests: the toy model converted to CTranslate2 int8 once, distinct
"versions" of it, and a real server on 127.0.0.1 (uvicorn in a thread) behind real HTTP clients.

The deploy hook is wired as ``gitops serve`` wires it: the signed verifier, a durable delivery
store, and a target that follows the one alias (here the DirSource already points it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gitops.deploy import DeliveryStore
from gitops.serve import DeployHandler, DirSource, ServeConfig, ServerThread, create_app
from gitops.serve.hooks import Decision, signed_verifier

SECRET = "serve-test-secret"
REF = "toy@production"


@pytest.fixture(scope="session")
def toy_ct2(base_model_dir, tmp_path_factory) -> Path:
    from gitops.convert.ct2 import convert_to_ct2

    return convert_to_ct2(base_model_dir, tmp_path_factory.mktemp("serve") / "toy-int8", "int8")


def make_version(src: Path, dst: Path, label: str) -> Path:
    """A copy of ``src`` with a marker file naming ``label``: same weights, a different md5, as two
    registered versions of one model would have."""
    shutil.copytree(src, dst)
    (dst / "gitops-test-version.txt").write_text(label + "\n")
    return dst


@pytest.fixture(scope="session")
def toy_versions(toy_ct2, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("versions")
    return {f"toy@v{i}": make_version(toy_ct2, root / f"v{i}", f"toy@v{i}") for i in range(1, 5)}


def signed(body: dict, *, secret: str = SECRET, now: float | None = None,
           delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    from gitops.deploy import signed_headers

    raw = json.dumps(body, separators=(",", ":")).encode()
    return raw, signed_headers(secret, raw, delivery or str(uuid.uuid4()), now=now)


@dataclass
class Live:
    """A running server and what the test needs to drive it."""

    srv: ServerThread
    app: object
    source: DirSource
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.srv.url

    @property
    def state(self):
        return self.app.state.serve

    def status(self) -> dict:
        return self.client.get("/readyz").json()

    def deploy(self, body: dict | None = None, **kw) -> httpx.Response:
        raw, headers = signed(body or {"model": "toy", "alias": "production"}, **kw)
        return self.client.post("/hooks/deploy", content=raw, headers=headers)

    def wait_version(self, label: str, timeout: float = 30.0) -> float:
        """Wait until /readyz names ``label``; returns the time it was first seen."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.status().get("version") == label:
                return time.monotonic()
            time.sleep(0.01)
        raise AssertionError(f"{label} was not served within {timeout} s: {self.status()}")

    def wait_idle(self, timeout: float = 30.0) -> None:
        assert self.state.manager.wait_idle(timeout), self.status()


def deploy_target(payload: dict, serving) -> Decision:
    """The DirSource stand-in for "what does the registry say at this commit": the followed alias,
    when the delivery is about it (the test has already pointed it at the new version)."""
    if (payload.get("model"), payload.get("alias")) != ("toy", "production"):
        return Decision(None, "another model or alias")
    return Decision(REF)


@contextmanager
def live_server(versions: dict[str, Path], *, fmt: str = "ct2", first: str = "toy@v1", wait: bool = True,
                store: Path | None = None, wait_s: float = 8.0, opener=None, **config) -> Iterator[Live]:
    """Serve ``REF`` (pointing at ``first``) with ``config`` overrides; shut down gracefully after.
    ``store``: the delivery store's file (default: a fresh one)."""
    source = DirSource()
    for label, path in versions.items():
        source.add(label, path, fmt)
    if first in versions:
        source.point(REF, first)
    with tempfile.TemporaryDirectory(prefix="serve-deliveries-") as tmp, \
            DeliveryStore(store or Path(tmp) / "deliveries.sqlite") as deliveries:
        handler = DeployHandler(signed_verifier(SECRET), deploy_target, deliveries, wait_s=wait_s)
        app = create_app(ServeConfig(REF, threads=1, **config), source, deploy=handler, opener=opener)
        with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            live = Live(srv, app, source, client)
            if wait:
                live.wait_idle(120)
            yield live
