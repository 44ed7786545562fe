"""`gitops train` end to end in a real GitOps repo: data set ingest -> train -> registered version
with lineage and a model card -> a second run continuing from the registry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gitops import yamlio
from gitops.train import card
from gitops.train.train_config import config_hash
from tests.conftest import git_state, run_gitops
from tests.train_fixtures import tiny_config

pytestmark = pytest.mark.slow
MODEL = "review-autocomplete"


@pytest.fixture
def repo(gitops_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A GitOps repo with model review-autocomplete and data set reviews@v1 (120 demo reviews)."""
    from gitops import api
    from gitops.ml.corpus import load_corpus, write_csv

    monkeypatch.chdir(gitops_repo)  # DVC resolves stage paths against the working directory
    ws = api.Workspace(gitops_repo)
    api.create_model(ws, MODEL, description="review autocompletion")
    api.create_dataset(ws, "reviews", {"id": "string", "product": "string", "rating": "int", "text": "string"},
                       "text", ["id"])
    api.ingest(ws, [write_csv(load_corpus()[:120], tmp_path / "batch-1.csv")], "reviews")
    return gitops_repo


def _write_config(root: Path, base: str | Path, **trainer: object) -> Path:
    data = tiny_config(Path(base), max_steps=4, **trainer)
    data["base_model"] = str(base)
    path = root.parent / "train.yaml"  # outside the repo: the tree stays clean for register
    path.write_text(yamlio.dumps(data))
    return path


def test_train_registers_a_version_with_lineage_and_card(repo: Path, base_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    cfg = _write_config(repo, base_model_dir)
    res = run_gitops("train", str(cfg), "--set", "trainer.learning_rate=5e-3", "--alias", "staging", cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert f"Registered {MODEL}@v1 (format hf)" in res.stdout and "alias staging -> v1" in res.stdout
    from gitops.core.workspace import Workspace

    _model, v1 = Workspace(repo).registry().resolve(f"{MODEL}@staging")
    assert v1.id == "v1" and v1.format == "hf" and v1.parent is None
    assert v1.dataset == "reviews@v1"  # `latest` resolved to the version actually read
    assert v1.base_model == str(base_model_dir)
    assert v1.config["trainer"]["learning_rate"] == 5e-3 and v1.config["dataset"] == "reviews@v1"
    assert v1.config_hash == config_hash(v1.config)
    assert v1.commit and v1.metrics["steps"] == 4 and v1.metrics["perplexity"] > 1
    vdir = repo / v1.path
    front = card.read_front_matter(vdir / "README.md")
    assert front["base_model"] == str(base_model_dir) and front["datasets"] == ["reviews@v1"]
    assert front["library_name"] == "transformers"
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {"perplexity": v1.metrics["perplexity"],
                                                        "loss": v1.metrics["eval_loss"]}
    assert json.loads((vdir / "metrics.json").read_text()) == v1.metrics
    assert [r["step"] for r in json.loads((vdir / "loss_curve.json").read_text())] == [2, 4]
    assert (vdir / "adapter" / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(str(vdir))  # the version's weights load as they are
    shown = subprocess.run(["dvc", "metrics", "show", "--json", f"{v1.path}/metrics.json"], cwd=repo,
                           capture_output=True, text=True)
    assert shown.returncode == 0 and '"perplexity"' in shown.stdout, shown.stderr
    assert git_state(repo)[1] == ""  # committed, the work dir ignored and removed
    assert not any((repo / ".gitops" / "runs").glob(f"{MODEL}-*"))

    # continue from the registry: parent v1, its weights are the base; a registry base -> adapter only
    cfg2 = _write_config(repo, f"{MODEL}@staging")
    res = run_gitops("train", str(cfg2), cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert f"Registered {MODEL}@v2 (format peft-lora) from {MODEL}@v1" in res.stdout
    _, v2 = Workspace(repo).registry().resolve(f"{MODEL}@v2")
    assert v2.parent == "v1" and v2.base_model == f"{MODEL}@v1" and v2.config["base_model"] == f"{MODEL}@v1"
    assert v2.format == "peft-lora" and v2.base_md5 == v1.md5
    front = card.read_front_matter(repo / v2.path / "README.md")
    assert front["base_model"] == f"{MODEL}@v1" and front["library_name"] == "peft"


def test_train_errors_are_one_sentence(repo: Path, base_model_dir: Path) -> None:
    cfg = _write_config(repo, base_model_dir)
    res = run_gitops("train", str(cfg), "--set", "trainer.lr=1", cwd=repo)
    assert res.exit_code == 1 and "unknown key 'trainer.lr'" in res.stderr
    res = run_gitops("train", str(cfg), "--set", "dataset=reviews@v9", cwd=repo)
    assert res.exit_code == 1 and "has no version v9" in res.stderr
    res = run_gitops("train", str(cfg), "--set", "prompt.template={title}: {text}", cwd=repo)
    assert res.exit_code == 1 and "prompt.template uses title" in res.stderr
    res = run_gitops("train", str(cfg), "--set", f"base_model={MODEL}@production", cwd=repo)
    assert res.exit_code == 1 and "no alias 'production'" in res.stderr
    assert git_state(repo)[1] == ""
