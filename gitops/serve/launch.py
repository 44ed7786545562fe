"""``gitops serve MODEL@ALIAS``: the endpoint for one alias of a GitOps repository, in the foreground.

:func:`prepare` checks everything a user can get wrong before anything starts (the serve extra is
installed, the reference parses, the followed branch exists, the alias is set there, the port is
free, the state directory is not in use by another server) and wires the parts: the
:class:`~gitops.serve.repo_source.RepoSource`, the deploy hook (signed verifier, durable delivery
store, the source as its target) and, with ``follow``, the poller. :func:`serve` runs it on
uvicorn until SIGTERM or Ctrl-C, which drain gracefully.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core import refs
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, RepoStateError, shown

MAX_HOOK_WAIT_S = 300.0
MAX_CONNECTIONS = 100_000
MIN_CLIENT_S, MAX_CLIENT_S = 0.5, 3600.0
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class ServeOptions:
    """How ``gitops serve`` runs (the CLI's options). ``secret`` None leaves the deploy hook off."""

    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = "auto"
    follow: bool = False
    poll_s: float = 30.0
    secret: str | None = None
    state_dir: Path | None = None
    branch: str | None = None
    threads: int | None = None
    device: str = "cpu"
    hook_wait_s: float = 8.0
    max_connections: int = 1000
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


@dataclass
class Serving:
    """A prepared server: the app, what it follows, and what it holds open."""

    app: Any
    source: Any
    options: ServeOptions
    tip: str
    version: str
    state_dir: Path
    store: Any = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}"

    def close(self) -> None:
        for close in self.closers:
            close()


def prepare(ws: Workspace, ref: str, options: ServeOptions) -> Serving:
    """Check and wire a server for ``ref`` (nothing listens yet); see the module docstring."""
    _check_installed()
    _check_options(options)
    parsed = refs.parse_ref(ref, require_ref=True)
    from gitops.serve.app import ServeConfig, create_app
    from gitops.serve.follow import Follower
    from gitops.serve.hooks import DeployHandler, signed_verifier
    from gitops.serve.protocol import ConnectionLimits
    from gitops.serve.repo_source import RepoSource

    state_dir = Path(options.state_dir or ws.state_path("serve", str(parsed)))
    source = RepoSource(ws, str(parsed), state_dir, branch=options.branch, engine=options.engine)
    tip = source.tip()
    target = source.at(tip)  # the model and the alias exist at the tip, or a clear error now
    source.check_servable(target)  # a prompt version's task and pinned base, before anything loads
    _check_port(options.host, options.port)
    _check_state_dir(state_dir)
    serving = Serving(None, source, options, tip, str(target.ref), state_dir)
    deploy = None
    if options.secret:
        from gitops.deploy.deliveries import DeliveryStore

        serving.store = DeliveryStore(state_dir / "deliveries.sqlite")  # refuses a second server on this state
        serving.closers.append(serving.store.close)
        deploy = DeployHandler(signed_verifier(options.secret), source.target, serving.store,
                               wait_s=options.hook_wait_s)
    background: list[Any] = [Follower(source, options.poll_s).start] if options.follow else []
    connections = ConnectionLimits(max_connections=options.max_connections, head_timeout_s=options.head_timeout_s,
                                   body_timeout_s=options.body_timeout_s)
    config = ServeConfig(str(parsed), threads=options.threads, device=options.device, connections=connections)
    # the first load is the target checked above, even if the branch has moved since (--follow catches up)
    serving.app = create_app(config, source, deploy=deploy, background=background, first=target)
    return serving


def serve(ws: Workspace, ref: str, options: ServeOptions, *,
          on_start: Callable[[Serving], None] | None = None) -> Serving:
    """Serve ``ref`` in the foreground until SIGTERM/SIGINT (graceful: requests in flight finish);
    ``on_start`` is called once everything is checked, just before listening."""
    serving = prepare(ws, ref, options)
    try:
        from gitops.serve.server import make_server

        server = make_server(serving.app, host=options.host, port=options.port)
        if on_start is not None:
            on_start(serving)
        server.run()
    finally:
        serving.close()
    return serving


def _check_installed() -> None:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"gitops serve needs the serve extra ({exc.name} is missing): "
                          "pip install 'gitops-registry[ml,serve]'") from None


def _check_options(options: ServeOptions) -> None:
    from gitops.serve.repo_source import ENGINES

    if options.engine not in ENGINES:
        raise ConfigError(f"--engine {options.engine}: expected one of {', '.join(ENGINES)}")
    if not 0 < options.port < 65536:
        raise ConfigError(f"--port {options.port}: expected 1 to 65535")
    if options.follow and not 1 <= options.poll_s <= 86_400:
        raise ConfigError(f"--poll {options.poll_s:g}: expected 1 to 86400 seconds")
    if not 0 < options.hook_wait_s <= MAX_HOOK_WAIT_S:
        raise ConfigError(f"--hook-wait {options.hook_wait_s:g}: expected more than 0, at most "
                          f"{MAX_HOOK_WAIT_S:g} seconds")
    if options.threads is not None and not 1 <= options.threads <= 1024:
        raise ConfigError(f"--threads {options.threads}: expected 1 to 1024")
    if not 1 <= options.max_connections <= MAX_CONNECTIONS:
        raise ConfigError(f"--max-connections {options.max_connections}: expected 1 to {MAX_CONNECTIONS}")
    for flag, seconds in (("--head-timeout", options.head_timeout_s), ("--body-timeout", options.body_timeout_s)):
        if not MIN_CLIENT_S <= seconds <= MAX_CLIENT_S:  # NaN fails both comparisons
            raise ConfigError(f"{flag} {seconds:g}: expected {MIN_CLIENT_S:g} to {MAX_CLIENT_S:g} seconds")
    _check_device(options.device)


def _check_device(device: str) -> None:
    """``cpu``, or ``cuda`` where a CUDA device is visible: a model that cannot load would leave a
    server that answers /healthz and never serves."""
    if device not in DEVICES:
        raise ConfigError(f"--device {shown(device)}: expected one of {', '.join(DEVICES)}")
    if device == "cuda" and not _cuda_visible():
        raise ConfigError("--device cuda: no CUDA device is visible to this process; use --device cpu")


def _cuda_visible() -> bool:
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return True
    except (ImportError, RuntimeError):
        pass
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _check_state_dir(state_dir: Path) -> None:
    """The state directory exists (or is created) and takes a file: else one sentence now, not a
    server whose loader fails in the background forever."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".gitops-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--state-dir {shown(state_dir, 200)}: cannot keep the server's state there "
                          f"({exc.strerror or exc})") from None


def _check_port(host: str, port: int) -> None:
    """Refuse a port already in use now, with one sentence, instead of uvicorn's exit later."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise RepoStateError(f"cannot listen on {host}:{port} ({exc.strerror}); is another server "
                                 "running there? Choose another --port") from None
