"""Fixtures for the train tests: a tiny OPT base model and a small review corpus, built locally.

Until the `ml` branch's ``default_base_model`` is available this builds its own throwaway model
(2 layers, hidden 32, BPE tokenizer trained on the corpus, vocab padded to a multiple of 8).
"""

from __future__ import annotations

import random
from pathlib import Path

ADJ = ["great", "poor", "solid", "flimsy", "lovely", "noisy", "handy", "cheap"]
NOUN = ["battery", "screen", "kettle", "lamp", "charger", "blender", "case", "cable"]


def corpus(n: int = 48, seed: int = 0) -> list[str]:
    """Short review-like sentences (deterministic)."""
    rnd = random.Random(seed)
    return [f"the {rnd.choice(NOUN)} is {rnd.choice(ADJ)} and i {rnd.choice(['love', 'return'])} it"
            for _ in range(n)]


def build_tiny_opt(path: Path, texts: list[str]) -> Path:
    """Save a tiny random OPT causal LM + fast tokenizer loadable with from_pretrained."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import OPTConfig, OPTForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=96, special_tokens=["<pad>", "</s>", "<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="</s>", bos_token="</s>")
    vocab = ((len(fast) + 7) // 8) * 8
    cfg = OPTConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2,
                    max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=fast.pad_token_id,
                    bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, dropout=0.0)
    OPTForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path
