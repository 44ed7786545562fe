"""The cases of tests/test_fail_fast.py, run in one fresh interpreter: ``python -m tests.fail_fast_runner DIR``.

Builds a small GitOps repository in DIR through the real CLI (versions with stand-in weights, a data
set, a classification model, a committed train.yaml), then runs each case through the real CLI and
prints one JSON line: per case its exit code, its output and the top-level modules it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from click.testing import CliRunner

from gitops import yamlio
from gitops.cli import main

GOLDEN = Path(__file__).parent / "golden" / "results-v3.json"
TASK = 'input: "Review: {text}"\nlabel: rating\nlabels: ["1", "2", "3", "4", "5"]\nfallback: "3"\n'
HEAVY = ("torch", "transformers", "ctranslate2", "peft", "accelerate", "gguf")


def cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def setup(work: Path) -> Path:
    repo = work / "repo"
    rows = work / "reviews.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i:03d}", "text": f"review number {i}", "rating": str(i % 5 + 1)})
                            + "\n" for i in range(60)))
    (work / "task.yaml").write_text(TASK)
    for n in range(1, 6):
        weights = work / f"w{n}"
        weights.mkdir()
        (weights / "model.safetensors").write_text(f"not weights {n}")
        (weights / "config.json").write_text('{"model_type": "opt"}')
    C = ("-C", str(repo))  # noqa: N806 - reads as the -C option it stands for
    steps = [("init", str(repo), "--remote", str(work / "remote")),
             ("dataset", "create", "reviews", "--column", "id:string", "--column", "text:string", "--column",
              "rating:string", "--text-field", "text", "--key", "id", *C),
             ("ingest", str(rows), "--dataset", "reviews", *C),
             ("model", "create", "review", *C),
             ("register", "review", str(work / "w1"), "--dataset", "reviews@v1", *C),
             ("register", "review", str(work / "w2"), "--dataset", "reviews@v1", "--parent", "v1", *C),
             ("register", "review", str(work / "w3"), "--format", "ct2", "--quantization", "int8", "--parent", "v2",
              *C),
             ("alias", "set", "review", "production", "v1", *C),
             ("model", "create", "ratings", "--task", "classification", "--classification", str(work / "task.yaml"),
              *C),
             ("register", "ratings", str(work / "w4"), "--dataset", "reviews@v1", *C),
             ("register", "ratings", str(work / "w5"), "--dataset", "reviews@v1", *C)]
    for args in steps:
        code, out = cli(*args)
        assert code == 0, (args, out)
    config = {"base_model": "review@v1", "dataset": "reviews@latest", "output": {"model": "review"},
              "trainer": {"max_steps": 2, "batch_size": 2}}
    yamlio.dump_file(repo / "train.yaml", config)
    git(repo, "add", "train.yaml")
    git(repo, "commit", "-q", "-m", "train.yaml")
    yamlio.dump_file(work / "no-output.yaml", {**config, "output": {"model": "nobody"}})
    yamlio.dump_file(work / "no-base.yaml", {**config, "base_model": "review@v9"})
    return repo


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


class Judge(BaseHTTPRequestHandler):
    """An OpenAI-style server that serves one model and counts the completions asked of it."""

    posts = 0

    def do_GET(self) -> None:  # http.server's name
        self._send({"object": "list", "data": [{"id": "judge", "object": "model"}]})

    def do_POST(self) -> None:
        Judge.posts += 1
        self._send({"choices": [{"text": " A", "index": 0}]})

    def _send(self, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


def run_cases(work: Path, repo: Path) -> dict[str, dict]:
    C = ("-C", str(repo))  # noqa: N806 - reads as the -C option it stands for
    afile = work / "afile"
    afile.write_text("a file, not a directory\n")
    (work / "more.csv").write_text("id,text,rating\nm1,more,3\n")
    (work / "fake.gguf").write_bytes(b"GGUF not really")
    (work / "used").mkdir()
    (work / "used" / "something").write_text("x")
    server = HTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    judge_url = f"http://127.0.0.1:{server.server_address[1]}"
    cases: dict[str, tuple[str, ...]] = {
        "train-no-output-model": ("train", str(work / "no-output.yaml"), *C),
        "train-no-base-version": ("train", str(work / "no-base.yaml"), *C),
        "compare-last-missing": ("compare", "ratings@v1", "ratings@v2", "ratings@v9", "--dataset", "reviews@v1", *C),
        "predict-bad-out": ("predict", "ratings@v1", "--dataset", "reviews@v1", *C, "--out", str(afile / "p.csv")),
        "eval-missing-baseline": ("eval", "review@v2", "--dataset", "reviews@v1", "--out", str(work / "r.json"), *C,
                                  "--baseline", "review@v9"),
        "eval-bad-out": ("eval", "review@v2", "--dataset", "reviews@v1", *C, "--out", str(afile / "r.json")),
        "eval-bad-alias": ("eval", "review@v2", "--dataset", "reviews@v1", "--out", str(work / "r.json"), *C,
                           "--alias", "v3"),
        "eval-bad-split": ("eval", "review@v2", "--dataset", "reviews@v1", "--out", str(work / "r.json"), *C,
                           "--split", "holdout"),
        "convert-bad-alias": ("convert", "review@v2", "--to", "ct2", *C, "--alias", "v4"),
        "convert-ct2": ("convert", "review@v3", "--to", "ct2", *C),
        "serve-bad-device": ("serve", "review@production", *C, "--device", "tpu"),
        "judge-wrong-model": ("judge", str(GOLDEN), "--endpoint", judge_url, "--model", "nobody"),
        "ingest-last-missing": ("ingest", str(work / "more.csv"), str(work / "missing.csv"), "--dataset", "reviews",
                                *C),
        "register-base-bad-name": ("register-base", str(work / "w1"), *C, "--name", "Bad Name"),
        "demo-used-dir": ("demo", "--keep", str(work / "used")),
    }
    found = {name: measure(args) for name, args in cases.items()}
    with (repo / "train.yaml").open("a") as fh:  # a tracked config, changed and not committed
        fh.write("# lr tried: 5e-4\n")
    found["train-modified-config"] = measure(("train", str(repo / "train.yaml"), *C))
    found["train-modified-config"]["run_dirs"] = [p.name for p in (repo / ".gitops" / "runs").glob("review-*")]
    found["register-base-dirty"] = measure(("register-base", str(work / "fake.gguf"), *C))
    git(repo, "checkout", "train.yaml")
    found["judge-wrong-model"]["judge_posts"] = Judge.posts
    server.shutdown()
    return found


def measure(args: tuple[str, ...]) -> dict:
    before = set(sys.modules)
    code, out = cli(*args)
    imported = sorted({m.split(".")[0] for m in set(sys.modules) - before})
    return {"args": list(args), "exit_code": code, "output": out, "imported": imported}


def main_() -> None:
    work = Path(sys.argv[1])
    repo = setup(work)
    setup_heavy = sorted(m for m in HEAVY if m in sys.modules)
    print(json.dumps({"setup_heavy": setup_heavy, "cases": run_cases(work, repo)}))


if __name__ == "__main__":
    main_()
