"""The embedded default base model: builds, loads through the real from_pretrained, writes words."""

from __future__ import annotations

import json
import re

import pytest

from gitops.errors import TrainError
from gitops.ml import basemodel
from gitops.ml.corpus import load_corpus


@pytest.fixture(scope="module")
def loaded(base_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(base_model_dir), AutoTokenizer.from_pretrained(
        base_model_dir)


def test_loads_with_from_pretrained_and_fits_ctranslate2(loaded):
    model, tok = loaded
    assert model.config.model_type == "opt"
    assert len(tok) % 8 == 0 and model.config.vocab_size == len(tok)
    assert tok.unk_token == "<unk>" and tok.unk_token_id is not None
    assert tok.bos_token == tok.eos_token == "</s>" and tok.pad_token == "<pad>"
    assert tok("good")["input_ids"][0] == tok.bos_token_id  # OPT prepends </s> as BOS
    assert tok.padding_side == "left"


def test_greedy_completion_is_corpus_words(loaded):
    import torch

    model, tok = loaded
    enc = tok(["This product is"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    vocab = {w.lower() for row in load_corpus() for w in re.findall(r"[A-Za-z]+", row["text"])}
    words = re.findall(r"[A-Za-z]+", text)
    assert words and sum(w.lower() in vocab for w in words) >= max(1, len(words) // 2), text


def test_cache_is_reused(base_model_dir, ml_cache_dir):
    marker = base_model_dir / basemodel.MARKER
    before = marker.stat().st_mtime_ns
    calls = []
    again = basemodel.default_base_model(ml_cache_dir, progress=lambda d, t: calls.append(d))
    assert again == base_model_dir and not calls
    assert marker.stat().st_mtime_ns == before
    assert not list(ml_cache_dir.glob(".base-model-*")), "a temporary build directory was left"


def test_env_var_picks_cache_and_stale_dir_is_replaced(tmp_path, monkeypatch):
    recipe = basemodel.Recipe(steps=2, batch_size=4)
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path))
    stale = tmp_path / f"base-model-{recipe.key()}"
    stale.mkdir()
    (stale / "config.json").write_text("{half a model")  # a crash left this, no marker
    steps = []
    path = basemodel.default_base_model(recipe=recipe, progress=lambda d, t: steps.append((d, t)))
    assert path == stale and (path / basemodel.MARKER).is_file()
    assert steps[-1] == (2, 2)
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_build_refuses_non_empty_dir(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(TrainError, match="not empty"):
        basemodel.build_base_model(tmp_path, steps=1)


@pytest.mark.slow
def test_two_processes_build_once(tmp_path):
    """The lock: two processes asking at once get the same model, and only one builds it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from gitops.ml import basemodel\n"
        "built = []\n"
        "p = basemodel.default_base_model(sys.argv[1], progress=lambda d, t: built.append(d),"
        " recipe=basemodel.Recipe(steps=2, batch_size=4))\n"
        "print(p, bool(built))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0][0] == outs[1][0]
    assert sorted(o[1] for o in outs) == ["False", "True"]


def test_the_cache_is_verified_on_every_use(tmp_path):
    """The marker lists every file's md5; a changed or added file is refused naming it, and a build
    from before manifests (a marker without one) is rebuilt, not trusted."""
    from gitops.errors import IntegrityError

    recipe = basemodel.Recipe(steps=2, batch_size=4)
    path = basemodel.default_base_model(tmp_path, recipe=recipe)
    assert basemodel.default_base_model(tmp_path, recipe=recipe) == path
    injected = path / "pytorch_model.bin"
    injected.write_bytes(b"a pickle that would run code")
    with pytest.raises(IntegrityError, match=r"pytorch_model\.bin changed\); refusing to use it: delete .* to "
                                             r"rebuild it\."):
        basemodel.default_base_model(tmp_path, recipe=recipe)
    injected.unlink()
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(IntegrityError, match=r"model\.safetensors changed"):
        basemodel.default_base_model(tmp_path, recipe=recipe)
    old = json.loads((path / basemodel.MARKER).read_text())
    del old["files"]
    (path / basemodel.MARKER).write_text(json.dumps(old))  # what builds before manifests wrote
    steps = []
    again = basemodel.default_base_model(tmp_path, recipe=recipe, progress=lambda d, t: steps.append(d))
    assert again == path and steps and "files" in json.loads((path / basemodel.MARKER).read_text())
