"""One real GitOps repo for the eval tests, built once per module: a data set with a holdout, and
the same base model registered as hf (v1, production), as a LoRA adapter on it (v2, peft-lora) and
converted to CTranslate2 int8 (v3, ct2). Every version goes through DVC like a user's would."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL = "review-autocomplete"
COLUMNS = {"id": "string", "product": "string", "rating": "int", "text": "string"}
# Generous gates that the tiny model passes; tests that need a failing gate write their own.
GATES_YAML = ("gates:\n  - metric: perplexity\n    max_increase_pct: 50\n"
              "  - metric: latency_p95_ms\n    max: 60000\n")
CURVE = [{"step": 10, "train_loss": 3.1, "eval_loss": None}, {"step": 20, "train_loss": 2.4, "eval_loss": 2.6}]
FAST = ("--max-rows", "40", "--samples", "4", "--max-new-tokens", "8", "--batch-size", "8",
        "--threads", "1")


@dataclass
class EvalRepo:
    root: Path
    model: str = MODEL


def _isolate(mp: pytest.MonkeyPatch, home: Path, cache: Path) -> None:
    """What tests/conftest.py's isolated_env does, for a module-scoped fixture."""
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
                         "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    for key, value in {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
                       "DVC_NO_ANALYTICS": "1", "XDG_CONFIG_HOME": str(home / ".config"),
                       "GITOPS_CACHE_DIR": str(cache)}.items():
        mp.setenv(key, value)


def _add_gates(root: Path, text: str) -> None:
    """Append a ``gates:`` block to the model's model.yaml, before its versions, and commit it."""
    from gitops.adapters import git

    path = root / "registry" / MODEL / "model.yaml"
    body = path.read_text()
    head, sep, tail = body.partition("versions:")
    path.write_text(head + text + sep + tail)
    git.add(root, [f"registry/{MODEL}/model.yaml"])
    git.commit(root, "gates", [f"registry/{MODEL}/model.yaml"])


@pytest.fixture(scope="module")
def eval_repo(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path, ml_cache_dir: Path) -> EvalRepo:
    import torch

    from gitops import api
    from gitops.adapters.dvc import Dvc
    from gitops.ml.corpus import write_batches
    from tests.ml_fixtures import make_lora_adapter

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("eval")
    (tmp / "home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp / "home", Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or ml_cache_dir))
        root = api.init(tmp / "repo", remote=str(tmp / "remote")).root
        mp.chdir(root)  # DVC resolves stage paths against the working directory
        ws = api.Workspace(root)
        api.create_dataset(ws, "reviews", COLUMNS, "text", ["id"])
        api.ingest(ws, write_batches(tmp / "batches", n=1, rows_per_batch=300), "reviews")
        api.create_model(ws, MODEL, description="test")
        _add_gates(root, GATES_YAML)
        ws = api.Workspace(root)  # a new command: model.yaml was edited by hand
        v1 = tmp / "v1"
        shutil.copytree(base_model_dir, v1)
        (v1 / "loss_curve.json").write_text(json.dumps(CURVE))  # what gitops train leaves there
        api.register(ws, MODEL, v1, fmt="hf", base_model="gitops/tiny-opt", dataset="reviews@v1")
        adapter = make_lora_adapter(base_model_dir, tmp / "adapter", steps=2, lr=0.002)
        api.register(ws, MODEL, adapter, fmt="peft-lora", parent="v1", base_model="gitops/tiny-opt",
                     dataset="reviews@v1")
        api.convert(ws, f"{MODEL}@v1", quantization="int8")
        api.set_alias(ws, MODEL, "production", "v1")
        Dvc(root).push()  # so a clone can pull weights and data, as CI does
    return EvalRepo(root)
