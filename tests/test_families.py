"""Any causal-LM family behaves the same: a tiny random model of each one, built from its config,
goes train -> convert (float32 and int8) -> eval through gitops' own code.

Settings that make hf and CTranslate2 agree exactly on random weights (measured, FINDINGS §4):
``initializer_range`` 0.2 (peaked logits, so a wiring bug cannot hide in a uniform distribution),
a vocabulary of ``len(tokenizer)`` rows, a multiple of 8 (OPT's converter pads to 8), an ``<unk>``
token (OPT, GPT-2 and Gemma converters need one), Mistral without a sliding window, Gemma2 without
soft-capping, Gemma2/3 with ``query_pre_attn_scalar`` = head dim, Gemma's default rope theta (its loaders
ignore another). Phi and Phi3 are refused by conversion in one sentence, and an architecture
CTranslate2 has no converter for too.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gitops.errors import ConvertError, TrainError

pytestmark = pytest.mark.slow

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128
COMMON = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
              max_position_embeddings=128, initializer_range=0.2)
FAMILIES = {
    "opt": ("OPTConfig", dict(hidden_size=HIDDEN, word_embed_proj_dim=HIDDEN, num_hidden_layers=LAYERS,
                              num_attention_heads=HEADS, ffn_dim=FFN, max_position_embeddings=128, init_std=0.2,
                              dropout=0.0, attention_dropout=0.0)),
    "llama": ("LlamaConfig", dict(COMMON, num_key_value_heads=KV_HEADS, tie_word_embeddings=True)),
    "gpt2": ("GPT2Config", dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=128,
                                initializer_range=0.2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)),
    "qwen2": ("Qwen2Config", dict(COMMON, num_key_value_heads=KV_HEADS, tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", dict(COMMON, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
                                  tie_word_embeddings=True)),
    "mistral": ("MistralConfig", dict(COMMON, num_key_value_heads=KV_HEADS, sliding_window=None)),
    "gemma": ("GemmaConfig", dict(COMMON, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS)),
    "gemma2": ("Gemma2Config", dict(COMMON, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
                                    final_logit_softcapping=None, attn_logit_softcapping=None,
                                    query_pre_attn_scalar=HIDDEN // HEADS, sliding_window=128)),
    "gemma3_text": ("Gemma3TextConfig", dict(COMMON, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
                                             query_pre_attn_scalar=HIDDEN // HEADS, sliding_window=128)),
}
TEXTS = 8  # one fixed batch: every step sees the same rows, so the train loss is comparable


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One byte-level BPE tokenizer for every family: no pad token (a tokenizer without one must work),
    ``<|endoftext|>`` ends a text, ``<unk>`` exists, no BOS is added, size a multiple of 8."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from gitops.ml.corpus import load_corpus

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([r["text"] for r in load_corpus()[:600]], trainers.BpeTrainer(
        vocab_size=504, special_tokens=["<|endoftext|>", "<unk>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   unk_token="<unk>", model_max_length=128)
    fast.add_tokens([f"<extra_{i}>" for i in range((-len(fast)) % 8)], special_tokens=True)
    assert len(fast) % 8 == 0 and fast.pad_token is None
    out = tmp_path_factory.mktemp("family-tokenizer")
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from gitops.ml.corpus import load_corpus

    return [row["text"] for row in load_corpus()[600:600 + TEXTS]]


def build(family: str, tokenizer_dir: Path, out: Path) -> Path:
    """A random model of ``family`` with the shared tokenizer, saved as an ordinary hf directory."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config_name, settings = FAMILIES[family]
    specials = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=None)
    config = getattr(transformers, config_name)(vocab_size=len(tok), **specials, **settings)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_converts_and_scores_alike(family: str, tokenizer_dir: Path, texts: list[str],
                                                 tmp_path: Path) -> None:
    import torch

    from gitops.convert.ct2 import convert_to_ct2
    from gitops.eval.harness import score_texts
    from gitops.ml.backends import open_backend
    from gitops.train import train_config
    from gitops.train.lora import train_model

    torch.set_num_threads(1)
    base = build(family, tokenizer_dir, tmp_path / "base")
    cfg = train_config.from_dict({
        "base_model": str(base), "dataset": "d@v1", "output": {"model": "m"},
        "adapter": {"r": 8, "alpha": 16, "dropout": 0.0},  # target_modules: peft's default for the family
        "trainer": {"batch_size": TEXTS, "max_length": 48, "learning_rate": 1e-2, "max_steps": 4, "epochs": 4,
                    "eval_steps": 1, "seed": 0}})
    result = train_model(texts, texts[:2], base, cfg, tmp_path / "run")
    losses = [point["train_loss"] for point in result.curve]
    assert len(losses) == 4 and losses[-1] < losses[0], losses  # training lowers the train loss

    merged = result.merged_dir
    ct2 = {q: convert_to_ct2(merged, tmp_path / f"ct2-{q}", q) for q in ("float32", "int8")}
    scores, completions = {}, {}
    for name, (path, fmt) in {"hf": (merged, "hf"), "ct2-float32": (ct2["float32"], "ct2"),
                              "ct2-int8": (ct2["int8"], "ct2")}.items():
        with open_backend(path, fmt, threads=1) as backend:
            scores[name] = score_texts(backend, texts, batch_size=4)
            completions[name] = [g.text for g in backend.generate([t[:24] for t in texts[:3]], max_new_tokens=8)]
    (hf_nll, hf_tokens), (ct2_nll, ct2_tokens) = scores["hf"], scores["ct2-float32"]
    assert hf_tokens == ct2_tokens > 0  # the same ids scored on both engines
    assert math.isclose(hf_nll, ct2_nll, rel_tol=1e-4), (hf_nll, ct2_nll)  # agree to float rounding
    assert completions["hf"] == completions["ct2-float32"]  # greedy decoding agrees too
    int8_nll, _ = scores["ct2-int8"]
    assert math.isfinite(int8_nll) and all(isinstance(c, str) for c in completions["ct2-int8"])


@pytest.mark.parametrize("config_name, model_type, sentence", [
    ("PhiConfig", "phi", "cannot convert phi models made by transformers"),
    ("Phi3Config", "phi3", "cannot convert phi3 models made by transformers"),
    ("StableLmConfig", "stablelm", "cannot convert stablelm models: it has no converter for StableLmConfig"),
])
def test_conversion_refuses_what_ctranslate2_cannot_convert_in_one_sentence(
        config_name: str, model_type: str, sentence: str, tmp_path: Path) -> None:
    import transformers

    from gitops.convert.ct2 import convert_to_ct2

    getattr(transformers, config_name)(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, vocab_size=64).save_pretrained(tmp_path / "src")
    with pytest.raises(ConvertError, match=sentence) as err:
        convert_to_ct2(tmp_path / "src", tmp_path / "out", "int8")
    assert "\n" not in err.value.message and not (tmp_path / "out").exists()


def test_lora_defaults_follow_peft_and_an_unmapped_family_is_one_sentence(tokenizer_dir: Path) -> None:
    import transformers
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    from gitops.train.lora import target_modules

    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64))
    assert target_modules(gpt2, None) == DEFAULTS["gpt2"] == ["c_attn"]
    assert target_modules(gpt2, ["c_proj"]) == ["c_proj"] and target_modules(gpt2, ["all-linear"]) == "all-linear"
    phi3 = transformers.Phi3ForCausalLM(transformers.Phi3Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2))
    with pytest.raises(TrainError, match=r"peft has no default for phi3 models; set it, e.g. \[") as err:
        target_modules(phi3, None)
    assert "qkv_proj" in err.value.message and "[all-linear]" in err.value.message
