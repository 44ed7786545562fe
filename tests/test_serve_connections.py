"""A server that cannot be starved or crashed by its clients (issue 17, hole 7), in process.

A real uvicorn server on 127.0.0.1 (the toy model on CTranslate2) behind raw sockets, which send
exactly the bytes a hostile or broken client sends: half a head, a body a byte at a time, nothing,
a body cut off, JSON 100,000 levels deep, a lone surrogate, numbers a float32 engine cannot take.
Every malformed request is a 400 in OpenAI's shape, a slow one is closed on its deadline, and a
client that goes away is neither a traceback in the log nor a 500 in /metrics. The slow-client
load (hundreds of trickling connections against ``gitops serve`` itself) is
``tests/test_serve_slow_clients.py``.
"""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from gitops.serve.protocol import ConnectionLimits
from tests.serve_fixtures import live_server

DEADLINE_S = 1.0  # head and body deadlines of the servers below
HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def live(toy_versions):
    limits = ConnectionLimits(head_timeout_s=DEADLINE_S, body_timeout_s=DEADLINE_S)
    with live_server({"toy@v1": toy_versions["toy@v1"]}, connections=limits) as live:
        yield live


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket, timeout: float = 10) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic)."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic()


def post(live, body: bytes) -> tuple[int, dict]:
    resp = live.client.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
    return resp.status_code, resp.json()


def metric(live, prefix: str) -> float:
    """The sum of the /metrics samples whose line starts with ``prefix``."""
    lines = live.client.get("/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


MALFORMED = [
    ("100,000-deep array", b'{"model": "toy", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("100,000-deep body", b"[" * 100_000),
    ("100,000-deep object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("lone surrogate in prompt", b'{"model": "toy", "prompt": "abc \\ud800 def"}'),
    ("lone surrogate in model", b'{"model": "toy\\udfff", "prompt": "x"}'),
    ("lone surrogate in a key", b'{"model": "toy", "prompt": "x", "\\ud800": 1}'),
    ("lone surrogate in stop", b'{"model": "toy", "prompt": "x", "stop": ["\\udc00"]}'),
    ("raw invalid UTF-8", b'{"model": "toy", "prompt": "\xff\xfe"}'),
    ("top_p 1e-300", b'{"model": "toy", "prompt": "x", "top_p": 1e-300}'),
    ("top_p denormal", b'{"model": "toy", "prompt": "x", "top_p": 5e-324}'),
    ("top_p 1e-40", b'{"model": "toy", "prompt": "x", "top_p": 1e-40}'),
    ("temperature 1e-300", b'{"model": "toy", "prompt": "x", "temperature": 1e-300, "seed": 1}'),
    ("temperature 1e-40", b'{"model": "toy", "prompt": "x", "temperature": 1e-40}'),
    ("temperature NaN", b'{"model": "toy", "prompt": "x", "temperature": NaN}'),
    ("top_p Infinity", b'{"model": "toy", "prompt": "x", "top_p": Infinity}'),
    ("max_tokens -Infinity", b'{"model": "toy", "prompt": "x", "max_tokens": -Infinity}'),
    ("temperature 1e999", b'{"model": "toy", "prompt": "x", "temperature": 1e999}'),
    ("n 10**30", b'{"model": "toy", "prompt": "x", "n": 1000000000000000000000000000000}'),
    ("n 1e308", b'{"model": "toy", "prompt": "x", "n": 1e308}'),
    ("max_tokens of 5,000 digits", b'{"model": "toy", "prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}"),
    ("max_tokens 10**30", b'{"model": "toy", "prompt": "x", "max_tokens": 1000000000000000000000000000000}'),
    ("seed 2**64", b'{"model": "toy", "prompt": "x", "seed": 18446744073709551616}'),
    ("a key twice", b'{"model": "toy", "prompt": "x", "prompt": "y"}'),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_every_malformed_request_is_a_400(live, body):
    status, answer = post(live, body)
    assert status == 400, answer
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    json.dumps(error, ensure_ascii=False).encode("utf-8")  # the answer itself is valid UTF-8 text


def test_malformed_chat_requests_are_400(live):
    for body in (b'{"model": "toy", "messages": [{"role": "user", "content": "\\ud800"}]}',
                 b'{"model": "toy", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                 b'{"model": "toy", "messages": [{"role": "user", "content": "x"}], "top_p": 1e-300}'):
        resp = live.client.post("/v1/chat/completions", content=body)
        assert resp.status_code == 400, resp.text


def test_the_engine_still_answers_at_the_floors(live):
    """The smallest values still accepted run (the floors are not arbitrary refusals)."""
    for extra in ({"top_p": 1e-6, "temperature": 1.0, "seed": 3}, {"temperature": 1e-4, "seed": 3}):
        status, answer = post(live, json.dumps({"model": "toy", "prompt": "The tour was", "max_tokens": 3,
                                                **extra}).encode())
        assert status == 200 and answer["choices"][0]["text"], answer


def test_a_client_gone_mid_body_is_no_traceback_and_no_500(live, caplog):
    before = metric(live, 'gitops_serve_requests_total{route="/v1/completions",status="499"')
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            with connect(live.url) as sock:
                sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"model": "toy", "pro')
            # the server notices the close and answers nobody; the access log line is its trace
        deadline = time.monotonic() + 10
        while metric(live, 'gitops_serve_requests_total{route="/v1/completions",status="499"') < before + 5:
            assert time.monotonic() < deadline, live.client.get("/metrics").text
            time.sleep(0.02)
    assert metric(live, 'gitops_serve_requests_total{route="/v1/completions",status="500"') == 0
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text


def test_a_body_that_does_not_arrive_is_408_and_closed(live):
    with connect(live.url) as sock:
        start = time.monotonic()
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"model": ')
        answer, closed = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"timeout"' in answer, answer
    assert DEADLINE_S <= closed - start < DEADLINE_S + 3


@pytest.mark.parametrize("sent", [b"", b"POST /v1/comp", HEAD], ids=["silent", "half a request line", "half a head"])
def test_a_head_that_does_not_arrive_is_closed(live, sent):
    with connect(live.url) as sock:
        start = time.monotonic()
        sock.sendall(sent)
        answer, closed = read_all(sock)
    assert DEADLINE_S <= closed - start < DEADLINE_S + 3
    assert answer == b"" if not sent else answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_trickled_head_is_closed_on_its_deadline_not_at_its_last_byte(live):
    """A byte every 0.1 s never resets the clock: the deadline runs from the connection's start."""
    with connect(live.url) as sock:
        start = time.monotonic()
        sock.settimeout(0.1)
        closed = None
        for byte in HEAD * 4:
            try:
                sock.send(bytes([byte]))
                if sock.recv(65536) == b"":
                    closed = time.monotonic()
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = time.monotonic()
                break
    assert closed is not None and closed - start < DEADLINE_S + 3


def test_a_kept_alive_connection_gets_a_fresh_head_deadline(live):
    """After a response, the next head has its own deadline; an idle kept-alive connection closes."""
    with connect(live.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        answered = time.monotonic()
        assert first.startswith(b"HTTP/1.1 200 ")
        time.sleep(DEADLINE_S / 3)
        sock.sendall(b"GET /heal")  # and never the rest
        answer, closed = read_all(sock)
    # the next head's deadline ran from the end of the response, not from its first byte
    assert answer.startswith(b"HTTP/1.1 408 ") and DEADLINE_S - 0.2 <= closed - answered < DEADLINE_S + 3


def test_drops_are_counted(live):
    text = live.client.get("/metrics").text
    assert 'gitops_serve_connections_dropped_total{reason="head_timeout"}' in text


def test_over_the_connection_limit_the_longest_waiting_goes_and_a_busy_server_says_503(toy_versions):
    limits = ConnectionLimits(max_connections=4, head_timeout_s=30, body_timeout_s=30)
    with live_server({"toy@v1": toy_versions["toy@v1"]}, connections=limits) as small:
        small.client.close()  # its kept-alive connection would count against the four
        silent = [connect(small.url) for _ in range(4)]
        time.sleep(0.2)
        with connect(small.url) as sock:  # the fifth: the oldest silent one makes room
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            answer, _ = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert read_all(silent[0], 5)[0] == b""  # evicted: closed, nothing sent
        for sock in silent:
            sock.close()
        time.sleep(0.2)
        busy = [connect(small.url) for _ in range(4)]  # four requests whose bodies are still coming
        for sock in busy:
            sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
        time.sleep(0.2)
        start = time.monotonic()
        with connect(small.url) as sock:  # nobody waits for a head: the newcomer is refused at once
            answer, closed = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer and closed - start < 1.0
        for sock in busy:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # the slots free up as soon as those clients leave
            try:
                with connect(small.url) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if read_all(sock)[0].startswith(b"HTTP/1.1 200 "):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
