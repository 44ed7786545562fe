"""Live swaps over real HTTP: zero failed requests across swaps, failed loads keep the old model,
the deploy hook refuses what the verifier refuses and acts on each delivery once (also across a
restart), and shutdown drains."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time

import httpx
import pytest

from tests.serve_fixtures import live_server, make_version

PROMPT = "The chocolate tour was excellent,"


class Clients:
    """``n`` threads sending completions back to back; each records (start, end, status, version)."""

    def __init__(self, url: str, n: int, *, model: str = "toy", prompt: str = PROMPT) -> None:
        self.url, self.stop = url, threading.Event()
        self.model, self.prompt = model, prompt
        self.log: list[list[tuple[float, float, int, str | None]]] = [[] for _ in range(n)]
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post("/v1/completions", json={"model": self.model, "prompt": self.prompt,
                                                             "max_tokens": 8, "temperature": 0})
                    version = r.json().get("model") if r.status_code == 200 else None
                    if version != r.headers.get("x-gitops-version", "").split(";")[0]:
                        version = "header and body disagree"
                    self.log[i].append((t0, time.monotonic(), r.status_code, version))
                except httpx.HTTPError as exc:
                    self.log[i].append((t0, time.monotonic(), 0, repr(exc)))

    def wait_all_served(self, label: str, timeout: float = 30.0) -> None:
        """Until every client's latest answer came from ``label`` (each got at least one)."""
        end = time.monotonic() + timeout
        while not all(log and log[-1][3] == label for log in self.log):
            assert time.monotonic() < end, f"not every client was served by {label}"
            time.sleep(0.01)

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def test_three_swaps_under_load_fail_no_request(toy_versions):
    with live_server(toy_versions) as live:
        old_models, seen_at = [], {}
        with Clients(live.url, 6) as clients:
            clients.wait_all_served("toy@v1")
            for k in (2, 3, 4):
                old_models.append(live.state.manager.current)
                live.source.point("toy@production", f"toy@v{k}")
                answer = live.deploy()  # answered once the new version serves
                assert answer.status_code == 200 and answer.json()["version"] == f"toy@v{k}", answer.text
                seen_at[k] = live.wait_version(f"toy@v{k}")
                clients.wait_all_served(f"toy@v{k}")
        requests = [r for log in clients.log for r in log]
        assert len(requests) >= 24  # each client was served by each version
        assert [r for r in requests if r[2] != 200] == []  # zero failed requests
        order = {f"toy@v{k}": k for k in range(1, 5)}
        assert {r[3] for r in requests} == set(order)  # every version served, nothing else
        for log in clients.log:  # per client the version only moves forward: one change per swap
            versions = [order[r[3]] for r in log]
            assert versions == sorted(versions)
        for k, t in seen_at.items():  # a request sent after a swap completed never sees an older version
            assert all(order[r[3]] >= k for r in requests if r[0] > t)
        assert live.status()["swaps"] == 3 and live.status()["last_error"] is None
        deadline = time.monotonic() + 5  # the old models are released once their last request is done
        while not all(m.closed for m in old_models):
            assert time.monotonic() < deadline, [m.pins for m in old_models]
            time.sleep(0.01)
        assert not live.state.manager.current.closed
        metrics = live.client.get("/metrics").text
        assert 'gitops_serve_swaps_total{result="swapped"} 4.0' in metrics
        singles = float(metrics.split('gitops_serve_batch_size_bucket{le="1.0"} ')[1].split()[0])
        batches = float(metrics.split("gitops_serve_batch_size_count ")[1].split()[0])
        assert singles < batches  # concurrent requests shared engine calls


def test_failed_loads_keep_the_old_model_serving(toy_versions, toy_ct2, tmp_path, caplog):
    corrupt = make_version(toy_ct2, tmp_path / "corrupt", "toy@v5")
    with open(corrupt / "model.bin", "r+b") as fh:
        fh.truncate(1000)
    tampered = make_version(toy_ct2, tmp_path / "tampered", "toy@v6")
    two = {k: toy_versions[k] for k in ("toy@v1", "toy@v2")}
    with live_server(two) as live, caplog.at_level(logging.ERROR, "gitops.serve"):
        live.source.add("toy@v5", corrupt, "ct2")
        live.source.add("toy@v6", tampered, "ct2")
        (tampered / "model.bin").write_bytes((tampered / "model.bin").read_bytes()[:-4] + b"\0\0\0\0")
        for label, why in (("toy@v5", "cannot open"), ("toy@v6", "not the recorded")):
            live.source.point("toy@production", label)
            answer = live.deploy()  # the sender hears the failure, refused for good (a retry cannot help)
            assert answer.status_code == 422 and why in answer.json()["error"]["message"], answer.text
            assert "Not deployed, toy@v1 still serves" in answer.json()["error"]["message"]
            live.wait_idle()
            ready = live.client.get("/readyz")
            assert ready.status_code == 200, ready.text  # still ready: the old model serves
            status = ready.json()
            assert status["version"] == "toy@v1" and status["swaps"] == 0
            assert status["last_error"]["ref"] == "toy@production" and why in status["last_error"]["error"]
            resp = live.client.post("/v1/completions", json={"model": "toy", "prompt": PROMPT, "max_tokens": 4})
            assert resp.status_code == 200 and resp.json()["model"] == "toy@v1"
            failed = [r for r in caplog.records if r.name == "gitops.serve" and r.fields.get("phase") == "failed"]
            assert failed and label in failed[-1].fields["error"] + failed[-1].fields.get("version", "")
            assert why in failed[-1].fields["error"]
        # a good version afterwards swaps in and clears the error
        live.source.point("toy@production", "toy@v2")
        live.deploy()
        live.wait_version("toy@v2")
        assert live.status()["last_error"] is None
        assert 'gitops_serve_swaps_total{result="failed"} 2.0' in live.client.get("/metrics").text


def test_deploy_hook_refuses_what_the_verifier_refuses(toy_versions):
    with live_server({"toy@v1": toy_versions["toy@v1"], "toy@v2": toy_versions["toy@v2"]}) as live:
        live.source.point("toy@production", "toy@v2")  # a load would change what is served
        cases = [
            (live.deploy(secret="wrong-secret"), 401, "does not match"),
            (live.deploy(now=time.time() - 3600), 401, "s old"),
            (live.client.post("/hooks/deploy", content=b"{}"), 400, "X-Gitops-Timestamp"),
        ]
        first = live.deploy(delivery="d-1", now=time.time())
        assert first.status_code == 200 and first.json()["ref"] == "toy@production", first.text
        assert first.json()["status"] == "deployed" and first.json()["version"] == "toy@v2"
        live.source.point("toy@production", "toy@v1")
        replay = live.deploy(delivery="d-1")  # a replayed (or retried) delivery acts no more
        assert replay.status_code == 200 and replay.json()["status"] == "already deployed"
        assert replay.json()["version"] == "toy@v2"
        cases.append((live.client.post("/hooks/deploy", content=b"x" * 70_000), 413, "limit"))
        for resp, status, words in cases:
            assert resp.status_code == status, resp.text
            assert words in resp.json()["error"]["message"]
        live.wait_idle()
        assert live.status()["version"] == "toy@v2" and live.status()["swaps"] == 1  # refused ones loaded nothing
        other = live.deploy({"model": "other", "alias": "production"})
        assert other.status_code == 200 and other.json()["status"] == "ignored"


def test_deploy_target_failure_lets_the_retry_in(toy_versions):
    from gitops.errors import GitError

    with live_server({"toy@v1": toy_versions["toy@v1"]}) as live:
        handler = live.state.desk.handler
        calls = []

        def flaky(payload, serving):
            if payload.get("boom"):
                raise KeyError("a bug in the target")
            calls.append(payload)
            if len(calls) == 1:
                raise GitError("git fetch failed: the remote hung up")
            return handler.target(payload, serving)

        live.state.desk.handler = dataclasses.replace(handler, target=flaky)
        body, sent = {"model": "toy", "alias": "production"}, time.time()
        first = live.deploy(body, delivery="d-retry", now=sent)
        assert first.status_code == 503 and first.headers["retry-after"] == "1"
        assert "remote hung up" in first.json()["error"]["message"]
        retry = live.deploy(body, delivery="d-retry", now=sent + 1)  # the sender's retry is let in
        assert retry.status_code == 200 and retry.json()["status"] == "deployed" and len(calls) == 2
        bug = live.deploy({"boom": True})  # an unexpected failure still answers in the error shape
        assert bug.status_code == 500 and bug.json()["error"]["code"] == "internal_error"


def test_shutdown_drains_requests_in_flight(base_model_dir, tmp_path):
    """hf engine (slower per token than ct2, so requests are surely in flight), one prompt per batch."""
    hf = tmp_path / "hf"
    shutil.copytree(base_model_dir, hf)
    with live_server({"toy@v1": hf}, fmt="hf", max_batch=1, max_queue=64) as live:
        results: list[httpx.Response | Exception] = []

        def one() -> None:
            try:
                results.append(httpx.post(live.url + "/v1/completions", timeout=60, json={
                    "model": "toy", "prompt": "Great", "max_tokens": 40, "temperature": 0}))
            except httpx.HTTPError as exc:
                results.append(exc)

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        batcher = live.state.batcher
        deadline = time.monotonic() + 20
        while batcher.admitted < 12:  # every request is inside the server
            assert time.monotonic() < deadline, batcher.admitted
            time.sleep(0.005)
        assert batcher.depth > 0  # and most still wait for the engine
        model = live.state.manager.current
        assert live.srv.stop(60)  # what SIGTERM does: stop accepting, finish what is in flight
        for t in threads:
            t.join()
        assert len(results) == 12
        assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in results), results
        assert all(r.json()["usage"]["completion_tokens"] > 0 for r in results)
        assert model.closed and batcher.depth == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(live.url + "/healthz", timeout=2)


def test_a_lora_version_swaps_in_merged(toy_versions, base_model_dir, tmp_path):
    """ct2 -> a peft-lora adapter (merged into its base on load, run by transformers)."""
    from gitops.ml.backends import open_backend
    from tests.ml_fixtures import make_lora_adapter

    adapter = make_lora_adapter(base_model_dir, tmp_path / "adapter", steps=2)
    with open_backend(adapter, "peft-lora", base_dir=base_model_dir, threads=1) as backend:
        [expected] = backend.generate([PROMPT], max_new_tokens=12)
    with live_server({"toy@v1": toy_versions["toy@v1"]}) as live:
        live.source.add("toy@v5", adapter, "peft-lora", base_dir=base_model_dir)
        live.source.point("toy@production", "toy@v5")
        live.deploy()
        live.wait_version("toy@v5")
        assert live.status()["format"] == "peft-lora"
        resp = live.client.post("/v1/completions", json={"model": "toy", "prompt": PROMPT, "max_tokens": 12,
                                                         "temperature": 0})
        assert resp.json()["model"] == "toy@v5" and resp.json()["choices"][0]["text"] == expected.text


def test_a_slow_load_answers_in_progress_and_then_deployed(toy_versions, tmp_path):
    """A load longer than the hook's wait: the attempt and a retry hear 409 + Retry-After, the
    delivery is not recorded done; once the swap is in, the next attempt hears "deployed"."""
    from gitops.serve.engine import open_model

    gate = threading.Event()

    def slow_opener(resolved):
        if resolved.version_label == "toy@v2":
            assert gate.wait(30)
        return open_model(resolved, threads=1)

    store = tmp_path / "deliveries.sqlite"
    two = {k: toy_versions[k] for k in ("toy@v1", "toy@v2")}
    with live_server(two, store=store, wait_s=0.3, opener=slow_opener) as live:
        live.source.point("toy@production", "toy@v2")
        first = live.deploy(delivery="d-slow")
        retry = live.deploy(delivery="d-slow")
        for answer in (first, retry):
            assert answer.status_code == 409 and answer.headers["retry-after"] == "1", answer.text
            assert answer.json()["error"]["code"] == "in_progress"
        assert live.status()["version"] == "toy@v1"
        gate.set()
        live.wait_version("toy@v2")
        done = live.deploy(delivery="d-slow")
        assert done.status_code == 200 and done.json()["version"] == "toy@v2"
        assert done.json()["status"] in ("deployed", "already deployed")
        assert live.status()["swaps"] == 1


def test_a_restarted_server_remembers_what_it_deployed(toy_versions, tmp_path):
    """The same delivery after a restart is answered from the durable store: nothing is resolved,
    loaded or swapped again, even though the source now names another version."""
    store = tmp_path / "deliveries.sqlite"
    versions = {k: toy_versions[k] for k in ("toy@v1", "toy@v2", "toy@v3")}
    with live_server(versions, store=store) as live:
        live.source.point("toy@production", "toy@v2")
        assert live.deploy(delivery="d-once").json()["status"] == "deployed"
    with live_server(versions, store=store, first="toy@v2") as again:
        again.source.point("toy@production", "toy@v3")
        answer = again.deploy(delivery="d-once")
        assert answer.status_code == 200 and answer.json()["status"] == "already deployed"
        assert answer.json()["version"] == "toy@v2"
        again.wait_idle()
        assert again.status()["version"] == "toy@v2" and again.status()["swaps"] == 0
