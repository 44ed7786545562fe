"""Conversion to CTranslate2 and the loading paths around it, on the real embedded base model."""

from __future__ import annotations

import json

import pytest

from gitops.convert.ct2 import META_FILE, convert_to_ct2
from gitops.errors import ConvertError, NotFoundError
from gitops.ml.backends import open_backend
from gitops.ml.loading import adapter_base, load_hf, load_peft, merge_adapter
from tests.ml_fixtures import make_lora_adapter

TEXTS = ["I love this blender. Five stars from me.",
         "Worst toaster I have ever owned. The handle is flimsy and the lid feels cheap. Save your money.",
         "This desk lamp is okay for the price."]


@pytest.fixture(scope="module")
def ct2_dirs(base_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ct2")
    return {q: convert_to_ct2(base_model_dir, root / q, q) for q in ("int8", "float32")}


@pytest.fixture(scope="module")
def adapter_dir(base_model_dir, tmp_path_factory):
    return make_lora_adapter(base_model_dir, tmp_path_factory.mktemp("lora") / "adapter")


def test_ct2_dirs_are_self_contained(ct2_dirs):
    for quant, path in ct2_dirs.items():
        names = {p.name for p in path.iterdir()}
        assert {"model.bin", "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
        assert json.loads((path / META_FILE).read_text())["quantization"] == quant
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "staging left"


def test_ct2_generates_text(ct2_dirs):
    with open_backend(ct2_dirs["int8"], "ct2", threads=1) as backend:
        [gen] = backend.generate(["This product is"], max_new_tokens=8)
    assert gen.text.strip() and 1 <= gen.new_tokens <= 8 and gen.seconds > 0


def test_hf_and_ct2_float32_scores_agree(base_model_dir, ct2_dirs):
    with open_backend(base_model_dir, "hf", threads=1) as hf:
        ref = hf.score(TEXTS, batch_size=2)
    with open_backend(ct2_dirs["float32"], "ct2", threads=1) as ct2:
        got = ct2.score(TEXTS, batch_size=2)
    with open_backend(ct2_dirs["int8"], "ct2", threads=1) as ct2:
        q8 = ct2.score(TEXTS)
    for (a, n), (b, m), (c, k) in zip(ref, got, q8):
        assert n == m == k and n > 5
        assert abs(a - b) <= 0.01 * a
        assert abs(a - c) <= 0.1 * a  # int8 is close, not equal


def test_reconverting_replaces_output(base_model_dir, tmp_path):
    out = tmp_path / "m"
    convert_to_ct2(base_model_dir, out, "int8")
    (out / "stale.txt").write_text("old")
    convert_to_ct2(base_model_dir, out, "int16")
    assert not (out / "stale.txt").exists()
    assert json.loads((out / META_FILE).read_text())["quantization"] == "int16"


def test_lora_adapter_loads_merges_and_converts(base_model_dir, adapter_dir, tmp_path):
    assert adapter_base(adapter_dir) == base_model_dir  # recorded in adapter_config.json
    model, tok = load_peft(adapter_dir)
    assert type(model).__name__.startswith("Peft") and tok.unk_token == "<unk>"
    merged = merge_adapter(adapter_dir, None, tmp_path / "merged")
    merged_model, _ = load_hf(merged)
    assert merged_model.config.model_type == "opt" and (merged / "tokenizer.json").is_file()
    ct2 = convert_to_ct2(adapter_dir, tmp_path / "ct2", "float32", fmt="peft-lora",
                         base_dir=base_model_dir)
    with open_backend(adapter_dir, "peft-lora", threads=1) as peft_b:
        tuned = peft_b.score(TEXTS)
    with open_backend(ct2, "ct2", threads=1) as ct2_b:
        converted = ct2_b.score(TEXTS)
    with open_backend(base_model_dir, "hf", threads=1) as base_b:
        base = base_b.score(TEXTS)
    for (a, _), (b, _), (_c, _) in zip(tuned, converted, base):
        assert abs(a - b) <= 0.01 * a  # the conversion kept the adapter's effect
    assert max(abs(a - c) for (a, _), (c, _) in zip(tuned, base)) > 1e-3  # and it had one


@pytest.mark.parametrize("kwargs, err, words", [
    ({"quantization": "int3"}, ConvertError, "Unsupported quantization 'int3'"),
    ({"fmt": "ct2"}, ConvertError, "already in CTranslate2 format"),
    ({"fmt": "onnx"}, ConvertError, "Cannot convert format 'onnx'"),
])
def test_bad_arguments(base_model_dir, tmp_path, kwargs, err, words):
    with pytest.raises(err, match=words):
        convert_to_ct2(base_model_dir, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_missing_and_wrong_sources(tmp_path, base_model_dir):
    with pytest.raises(NotFoundError, match="does not exist"):
        convert_to_ct2(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvertError, match=r"no config.json"):
        convert_to_ct2(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ConvertError, match=r"no adapter_config.json"):
        convert_to_ct2(base_model_dir, tmp_path / "out", fmt="peft-lora")


def test_adapter_with_missing_base_is_a_clear_error(adapter_dir, tmp_path):
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    moved = tmp_path / "adapter"
    moved.mkdir()
    for f in adapter_dir.iterdir():
        (moved / f.name).write_bytes(f.read_bytes())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConvertError, match="pass the base model directory explicitly"):
        convert_to_ct2(moved, tmp_path / "out", fmt="peft-lora")


def test_unconvertible_architecture(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path / "b")
    with pytest.raises(ConvertError, match="could not convert"):
        convert_to_ct2(tmp_path / "b", tmp_path / "out", "int8")


def test_corrupt_weights_are_a_clear_error(base_model_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in base_model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)  # a truncated download
    with pytest.raises(NotFoundError, match="Cannot load model weights from"):
        load_hf(bad)
    with pytest.raises(ConvertError, match="could not convert"):
        convert_to_ct2(bad, tmp_path / "out")
