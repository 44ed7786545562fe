"""Hundreds of trickling clients cannot starve ``gitops serve`` (issue 17, hole 7).

``gitops serve`` runs as its own process over a repository with the toy model on CTranslate2,
with a soft limit of 512 file descriptors (as a service manager may set). 600 connections send
their request head, or their body, one byte at a time: more than the process could even accept
before the fix (it starved every other client: asyncio stops accepting for a second at a time on
EMFILE, and the tricklers stayed open for good). Now the server keeps its connections below the
limit (a newcomer replaces the connection that has waited longest for a head), and every
trickler is closed on its deadline (2 s here, ``--head-timeout``/``--body-timeout``) or evicted
before; meanwhile another client's requests must each be answered within 1 s.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from gitops import api
from tests.test_serve_cli import Server, free_port

TRICKLERS = 600
DEADLINE_S = 2.0
SERVER_FDS = 512
CAP = SERVER_FDS - 128  # what the server keeps open under that limit (FD_RESERVE in gitops.serve.protocol)
HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory, toy_ct2: Path):
    """``gitops serve toy@production`` with 2 s client deadlines, on a repository of one version."""
    base = tmp_path_factory.mktemp("slow")
    repo = base / "repo"
    api.init(repo, remote=str(base / "dvc-remote"))
    ws = api.Workspace.open(repo)
    api.create_model(ws, "toy", description="toy", owners=["@acme/ml"])
    api.register(api.Workspace.open(repo), "toy", toy_ct2, fmt="ct2", quantization="int8")
    api.set_alias(api.Workspace.open(repo), "toy", "production", "v1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(SERVER_FDS, hard), hard))  # the child inherits it
    try:
        server = Server(repo, free_port(), "--head-timeout", str(DEADLINE_S), "--body-timeout", str(DEADLINE_S),
                        secret=None)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        server.wait_ready("toy@v1")
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.logs()


@pytest.fixture
def descriptors():
    """Room for this process's own ends of the connections (the soft limit is often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = TRICKLERS + 512
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= want, "the hard descriptor limit is too low for the test"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Tricklers:
    """``n`` connections, each sending its next byte about every ``every`` seconds from one thread;
    records when the server closed each one."""

    def __init__(self, port: int, n: int, every: float = 0.5) -> None:
        self.socks: list[socket.socket] = []
        self.payloads: list[bytes] = []
        self.started = time.monotonic()
        for i in range(n):
            if i and i % 50 == 0:
                time.sleep(0.05)  # ramped up over about half a second, as an attack tool does
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if i % 2:  # half never finish their head, a byte at a time
                self.payloads.append(HEAD * 50)
            else:  # half send a whole head at once, then their body a byte at a time
                sock.sendall(HEAD + b"Content-Length: 5000\r\n\r\n")
                self.payloads.append(b"{" * 5000)
            sock.setblocking(False)
            self.socks.append(sock)
        self.connected = time.monotonic()
        self.closed: dict[int, float] = {}
        self.every, self.stop = every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sent = 0
        while not self.stop.is_set() and len(self.closed) < len(self.socks):
            for i, sock in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    if sock.recv(65536) == b"":
                        self.closed[i] = time.monotonic()
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed[i] = time.monotonic()
                    continue
                try:
                    sock.send(self.payloads[i][sent:sent + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed[i] = time.monotonic()
            sent += 1
            self.stop.wait(self.every)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in self.socks:
            sock.close()


def accepted(served: Server) -> float:
    text = httpx.get(served.url + "/metrics", timeout=10).text
    return next(float(line.split()[1]) for line in text.splitlines()
                if line.startswith("gitops_serve_connections_accepted_total "))


def took_in(served: Server, count: float, timeout: float = 20) -> float:
    """Wait until the server has accepted ``count`` connections; how long that took."""
    start = time.monotonic()
    while (seen := accepted(served)) < count:
        assert time.monotonic() - start < timeout, f"the server took in {seen} connections of {count}"
        time.sleep(0.02)
    return time.monotonic() - start


def ask(client: httpx.Client, rounds: int | None = None, until: float | None = None) -> list[tuple[float, int]]:
    """(seconds, status) of /healthz and a completion, in turns; a new connection for each."""
    out = []
    body = {"model": "toy", "prompt": "The chocolate tour was", "max_tokens": 4, "temperature": 0}
    while (rounds is None or len(out) < 2 * rounds) and (until is None or time.monotonic() < until):
        for method, path in (("GET", "/healthz"), ("POST", "/v1/completions")):
            t0 = time.monotonic()
            resp = client.request(method, path, json=body if method == "POST" else None)
            out.append((time.monotonic() - t0, resp.status_code))
    return out


def test_600_trickling_connections_starve_nobody_and_are_closed_on_their_deadline(served: Server, descriptors):
    fresh = httpx.Client(base_url=served.url, timeout=5, limits=httpx.Limits(max_keepalive_connections=0))
    quiet = ask(fresh, rounds=3)  # the same requests without the tricklers, for the report
    before = accepted(served)
    tricklers = Tricklers(served.port, TRICKLERS)
    try:
        # once the server has taken in the burst of connects (the kernel queues them meanwhile): from
        # then on the tricklers trickle, each until its deadline
        burst = took_in(served, before + TRICKLERS + 1)
        loaded = ask(fresh, until=tricklers.started + DEADLINE_S + 1.5)  # through their deadlines too
        print(f"quiet: max {max(s for s, _ in quiet):.3f} s; burst taken in after {burst:.2f} s; "
              f"with {TRICKLERS} tricklers: "
              f"{len(loaded)} requests, max {max(s for s, _ in loaded):.3f} s")
        assert {status for _, status in quiet + loaded} == {200}, loaded
        assert len(loaded) >= 6 and max(s for s, _ in loaded) < 1.0, sorted(loaded)[-5:]
        deadline = tricklers.started + burst + DEADLINE_S + 4.0
        while len(tricklers.closed) < TRICKLERS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tricklers.closed) == TRICKLERS, f"{TRICKLERS - len(tricklers.closed)} tricklers still open"
        held = sorted(t - tricklers.started for t in tricklers.closed.values())
    finally:
        tricklers.close()
        fresh.close()
    metrics = httpx.get(served.url + "/metrics").text
    count = {key: sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))
             for key, prefix in [*((reason, f'gitops_serve_connections_dropped_total{{reason="{reason}"}}')
                                   for reason in ("evicted", "limit", "head_timeout", "body_timeout")),
                                 ("body 408", 'gitops_serve_requests_total{route="/v1/completions",status="408"')]}
    print(f"closed after {held[0]:.2f} to {held[-1]:.2f} s: {count}")
    # every trickler was closed by a bound, and the deadlines did fire (a body's answer is the app's 408)
    assert sum(count.values()) >= TRICKLERS and count["head_timeout"] and count["body 408"], count
    assert 'status="500"' not in metrics
