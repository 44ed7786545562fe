"""The OpenAI-compatible API over real HTTP: the openai client unchanged, every error case, ops."""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx
import openai
import pytest

from gitops.ml.backends import open_backend
from tests.serve_fixtures import REF, live_server

PROMPT = "The chocolate tour was excellent,"


@pytest.fixture(scope="module")
def live(toy_versions):
    with live_server({"toy@v1": toy_versions["toy@v1"]}) as live:
        yield live


@pytest.fixture(scope="module")
def client(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="not-checked", max_retries=0)


@pytest.fixture(scope="module")
def expected(toy_versions):
    """The same model's greedy completions straight from the backend, for comparison."""
    with open_backend(toy_versions["toy@v1"], "ct2", threads=1) as backend:
        return {p: g.text for p, g in zip([PROMPT, "Bad kettle"],
                                          backend.generate([PROMPT, "Bad kettle"], max_new_tokens=24))}


def test_openai_client_plain(client, live, expected):
    raw = client.completions.with_raw_response.create(model="toy", prompt=PROMPT, max_tokens=24, temperature=0)
    resp = raw.parse()
    assert resp.model == "toy@v1"
    assert raw.headers["x-gitops-version"] == f"toy@v1; md5={live.source.fetch('toy@v1').md5}"
    assert resp.choices[0].text == expected[PROMPT] and resp.choices[0].text
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.prompt_tokens == 13 and 0 < resp.usage.completion_tokens <= 24
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_openai_client_streaming(client, expected):
    chunks = list(client.completions.create(model=REF, prompt=PROMPT, max_tokens=24, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == expected[PROMPT]
    assert len([c for c in chunks if c.choices and c.choices[0].text]) > 3  # token by token, not one blob
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert chunks[-1].usage.completion_tokens > 0 and {c.model for c in chunks} == {"toy@v1"}


def test_prompt_list_gives_one_choice_each(client, expected):
    resp = client.completions.create(model="toy@v1", prompt=[PROMPT, "Bad kettle"], max_tokens=24, temperature=0)
    assert [c.index for c in resp.choices] == [0, 1]
    assert [c.text for c in resp.choices] == [expected[PROMPT], expected["Bad kettle"]]


def test_stop_strings_cut_the_text(client, expected):
    word = expected[PROMPT].split()[2]  # a word in the middle of the greedy completion
    resp = client.completions.create(model="toy", prompt=PROMPT, max_tokens=24, temperature=0, stop=["\n", word])
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].text == expected[PROMPT][:expected[PROMPT].index(word)]


def test_max_tokens_gives_length(client):
    resp = client.completions.create(model="toy", prompt=PROMPT, max_tokens=2, temperature=0)
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 2


def test_seed_makes_sampling_reproducible(client):
    def ask(seed):
        return client.completions.create(model="toy", prompt=PROMPT, max_tokens=12, temperature=1.0,
                                         seed=seed).choices[0].text

    assert ask(7) == ask(7)
    assert len({ask(s) for s in range(5)}) > 1


def test_models_endpoint(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["toy", "toy@v1"]


def test_unknown_model_is_404_through_the_client(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.completions.create(model="other", prompt="x", max_tokens=2)
    assert err.value.code == "model_not_found" and err.value.param == "model"


BAD = [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    ({"model": "toy", "prompt": "x", "frobnicate": 1}, 400, "frobnicate"),
    ({"prompt": "x"}, 400, "model"),
    ({"model": "toy"}, 400, "prompt"),
    ({"model": "toy", "prompt": [1, 2, 3]}, 400, "prompt"),
    ({"model": "toy", "prompt": []}, 400, "prompt"),
    ({"model": "toy", "prompt": ["x"] * 33}, 400, "prompt"),
    ({"model": "toy", "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "toy", "prompt": "x", "max_tokens": "5"}, 400, "max_tokens"),
    ({"model": "toy", "prompt": "x", "max_tokens": True}, 400, "max_tokens"),
    ({"model": "toy", "prompt": "x", "max_tokens": 128}, 400, "max_tokens"),
    ({"model": "toy", "prompt": "x", "temperature": 2.5}, 400, "temperature"),
    ({"model": "toy", "prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ({"model": "toy", "prompt": "x", "top_p": 0}, 400, "top_p"),
    ({"model": "toy", "prompt": "x", "seed": -1}, 400, "seed"),
    ({"model": "toy", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"model": "toy", "prompt": "x", "stop": [""]}, 400, "stop"),
    ({"model": "toy", "prompt": "x", "n": 2}, 400, "n"),
    ({"model": "toy", "prompt": "x", "stream": "yes"}, 400, "stream"),
    ({"model": "toy", "prompt": "x", "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ({"model": "toy", "prompt": "x", "echo": True}, 400, "echo"),
    ({"model": "toy", "prompt": "x", "best_of": 3}, 400, "best_of"),
    ({"model": "toy", "prompt": "x", "logprobs": 2}, 400, "logprobs"),
    ({"model": "nope", "prompt": "x"}, 404, "model"),
    ({"model": "toy@v9", "prompt": "x"}, 404, "model"),
    ({"model": "toy", "prompt": "word " * 200}, 413, "prompt"),  # 200+ tokens > the 128-token context
    ({"model": "toy", "prompt": "a" * 40_000}, 413, "prompt"),  # over the character limit
    ({"model": "toy", "prompt": PROMPT, "max_tokens": 120}, 413, "prompt"),  # fits alone, not with max_tokens
]


@pytest.mark.parametrize("body,status,param", BAD, ids=[f"{s}-{p}-{i}" for i, (_, s, p) in enumerate(BAD)])
def test_bad_requests_get_openai_errors(live, body, status, param):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = live.client.post("/v1/completions", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    if param:  # the message names the field too, for a person reading a log
        assert param in error["message"] or status in (404, 413)


def test_acceptable_defaults_of_unsupported_fields_pass(live):
    body = {"model": "toy", "prompt": "x", "max_tokens": 1, "n": 1, "echo": False, "best_of": 1, "logprobs": None,
            "presence_penalty": 0.0, "frequency_penalty": 0, "user": "u1", "suffix": None, "logit_bias": {}}
    assert live.client.post("/v1/completions", json=body).status_code == 200


def test_body_over_the_limit_is_413(toy_versions):
    from gitops.serve import Limits

    with live_server({"toy@v1": toy_versions["toy@v1"]}, limits=Limits(max_body_bytes=200)) as small:
        resp = small.client.post("/v1/completions", json={"model": "toy", "prompt": "x" * 300})
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_unknown_route_and_method_use_the_error_shape(live):
    assert live.client.get("/v2/nothing").json()["error"]["code"] == "404"
    resp = live.client.get("/v1/completions")
    assert resp.status_code == 405 and resp.json()["error"]["type"] == "invalid_request_error"


def test_queue_full_is_429_with_retry_after(toy_versions):
    with live_server({"toy@v1": toy_versions["toy@v1"]}, max_queue=2, max_batch=1) as small:
        # one request with more prompts than the queue holds: refused whole, nothing queued
        resp = small.client.post("/v1/completions", json={"model": "toy", "prompt": ["a", "b", "c"]})
        assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
        assert resp.json()["error"]["type"] == "rate_limit_error" and small.state.batcher.depth == 0
        # many at once against a one-at-a-time engine and two queue slots: the overflow is refused
        statuses: list[tuple[int, str | None]] = []

        def one() -> None:
            r = httpx.post(small.url + "/v1/completions", json={"model": "toy", "prompt": "Great", "max_tokens": 30,
                                                                "temperature": 0}, timeout=30)
            statuses.append((r.status_code, r.headers.get("retry-after")))

        threads = [threading.Thread(target=one) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {s for s, _ in statuses} == {200, 429}, statuses
        assert all(ra == "1" for s, ra in statuses if s == 429)


def test_deadline_in_the_queue_is_504(toy_versions):
    with live_server({"toy@v1": toy_versions["toy@v1"]}, request_timeout_s=0.001, max_wait_ms=20) as slow:
        resp = slow.client.post("/v1/completions", json={"model": "toy", "prompt": "x"})
        assert resp.status_code == 504 and resp.json()["error"]["code"] == "timeout"


def test_not_ready_is_503_and_readyz_says_why(toy_versions):
    with live_server({"toy@v1": toy_versions["toy@v1"]}, first="none") as broken:
        resp = broken.client.post("/v1/completions", json={"model": "toy", "prompt": "x"})
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        ready = broken.client.get("/readyz")
        assert ready.status_code == 503 and "toy@production names no version" in ready.json()["last_error"]["error"]
        assert broken.client.get("/healthz").status_code == 200  # alive, just not ready


def test_metrics_and_access_log(live, client, caplog):
    with caplog.at_level(logging.INFO, logger="gitops.serve.access"):
        client.completions.create(model="toy", prompt=PROMPT, max_tokens=3, temperature=0)
        live.client.post("/v1/completions", json={"model": "toy"})
        # the line is written once the last byte went out, just after the client has its answer
        deadline = time.monotonic() + 5
        while len({r.fields["status"] for r in caplog.records if r.name == "gitops.serve.access"}) < 2:
            assert time.monotonic() < deadline, "no access log lines"
            time.sleep(0.01)
    text = live.client.get("/metrics").text
    assert 'gitops_serve_requests_total{route="/v1/completions",status="200",version="toy@v1"}' in text
    assert 'gitops_serve_errors_total{route="/v1/completions",type="invalid_request_error"}' in text
    assert 'gitops_serve_completion_tokens_total{version="toy@v1"}' in text
    assert 'gitops_serve_model_info{format="ct2",md5="' in text and "gitops_serve_queue_depth 0.0" in text
    assert 'gitops_serve_request_duration_seconds_bucket{le="0.005",route="/v1/completions"}' in text
    lines = [r for r in caplog.records if r.name == "gitops.serve.access"]
    ok = next(r.fields for r in lines if r.fields["status"] == 200)
    assert ok["version"] == "toy@v1" and ok["completion_tokens"] == 3 and ok["prompt_tokens"] == 13
    assert next(r.fields for r in lines if r.fields["status"] == 400)["error_type"] == "invalid_request_error"
    from gitops.serve.logs import JsonFormatter

    assert json.loads(JsonFormatter().format(lines[0]))["path"] == "/v1/completions"


def test_the_server_modules_import_no_heavy_library():
    """`gitops serve --help` and the app itself start light; the engines load with the model."""
    import subprocess
    import sys

    probe = ("import sys, gitops.serve.app, gitops.serve.server; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'ctranslate2', 'dvc'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_docs_example_runs(toy_versions, capsys):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    code = re.search(r"## Running it.*?```python\n(.*?)```", doc, re.S).group(1)
    assert '"models/review-autocomplete/v7"' in code
    exec(code.replace('"models/review-autocomplete/v7"', repr(str(toy_versions["toy@v1"]))), {})
    assert re.fullmatch(r"review-autocomplete@v7 ' .+'\n", capsys.readouterr().out)
