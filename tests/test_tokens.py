"""One tokenization for training, scoring and generation (gitops/ml/tokens.py).

Two real tokenizers with opposite conventions: the embedded toy OPT's, whose post-processor
prepends ``</s>`` (OPT's BOS), and a SmolLM2-like one built from a GGUF (``add_bos_token`` false,
its "BOS" the ChatML ``<|im_start|>`` marker, pad ``<|endoftext|>``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gitops.errors import ConfigError
from gitops.ml import tokens
from tests.gguf_fixtures import write_tiny_llama_gguf

TEXT = "This kettle is quiet and the handle feels solid."


@pytest.fixture(scope="module")
def chatml_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with a SmolLM2-style tokenizer (the reference directory of the tiny GGUF)."""
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("chatml"))[1]


def test_the_tokenizers_own_rules_decide_bos_and_eos_is_appended_once(base_model_dir, chatml_model) -> None:
    from transformers import AutoTokenizer

    opt = AutoTokenizer.from_pretrained(base_model_dir)
    ids = tokens.sequence_ids(opt, TEXT)
    assert ids[0] == opt.bos_token_id and ids[1] != opt.bos_token_id  # OPT's own BOS, once
    assert ids[-1] == opt.eos_token_id and ids[:-1] == opt(TEXT)["input_ids"]
    assert tokens.prompt_ids(opt, TEXT) == opt(TEXT)["input_ids"]  # a prompt gets no EOS

    chatml = AutoTokenizer.from_pretrained(chatml_model)
    ids = tokens.sequence_ids(chatml, TEXT)
    assert chatml.bos_token == "<|im_start|>" and chatml.bos_token_id not in ids  # never prepended by hand
    assert ids == chatml(TEXT, add_special_tokens=False)["input_ids"] + [chatml.eos_token_id]
    assert tokens.sequence_ids(chatml, TEXT + chatml.eos_token) == ids  # already last: not doubled
    assert len(tokens.sequence_ids(chatml, TEXT, max_length=5)) == 5


def test_chat_text_carries_its_own_markers(chatml_model, base_model_dir) -> None:
    from transformers import AutoTokenizer

    chatml = AutoTokenizer.from_pretrained(chatml_model)
    text = tokens.chat_text(chatml, "Review a kettle.", "It is quiet.")
    assert text == "<|im_start|>user\nReview a kettle.<|im_end|>\n<|im_start|>assistant\nIt is quiet.<|im_end|>\n"
    ids = tokens.sequence_ids(chatml, text, chat=True)
    assert ids == chatml(text, add_special_tokens=False)["input_ids"]  # no EOS after the template's end
    prompt = tokens.chat_text(chatml, "Review a kettle.")
    assert prompt.endswith("<|im_start|>assistant\n")
    with pytest.raises(ConfigError, match=r"prompt.chat is true, but the model's tokenizer has no chat template"):
        tokens.chat_text(AutoTokenizer.from_pretrained(base_model_dir), "hi")


def test_a_long_prompt_keeps_its_leading_specials_and_its_end(base_model_dir) -> None:
    from transformers import AutoTokenizer

    opt = AutoTokenizer.from_pretrained(base_model_dir)
    full = tokens.prompt_ids(opt, TEXT)
    cut = tokens.prompt_ids(opt, TEXT, keep=6)
    assert cut == full[:1] + full[-5:] and cut[0] == opt.bos_token_id


def test_pad_falls_back_to_eos_then_zero(chatml_model) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chatml_model)
    assert tokens.pad_id(tok) == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    tok.pad_token = None
    assert tokens.pad_id(tok) == tok.eos_token_id
    tok.eos_token = None
    assert tokens.pad_id(tok) == 0


@pytest.mark.parametrize("which", ["opt", "chatml"])
def test_eval_scores_exactly_what_training_learns(which: str, base_model_dir, chatml_model) -> None:
    """The loss training computes on a row equals the NLL evaluation reports for it, on both kinds
    of tokenizer: the same ids, the same first-token convention (a BOS prepended by eval alone, the
    old bug, makes these differ by a whole extra scored token)."""
    import torch

    from gitops.ml.backends import open_backend
    from gitops.train.lora import _collate, _encode

    path = base_model_dir if which == "opt" else chatml_model
    with open_backend(path, "hf", threads=1) as backend:
        [(nll, count)] = backend.score([TEXT])
        batch = _collate(tokens.pad_id(backend.tokenizer))(_encode(backend.tokenizer, [TEXT], 256))
        with torch.no_grad():
            loss = backend.model(**batch).loss.item()
    assert count == batch["input_ids"].shape[1] - 1
    assert math.isclose(loss * count, nll, rel_tol=1e-5)
