"""Tiny GGUF files written with the real ``gguf`` package, so GGUF loading is tested in seconds.

:func:`write_tiny_llama_gguf` builds a random two-layer Llama and a byte-level BPE tokenizer (trained
on the demo corpus), and writes them as llama.cpp's converter does: GGUF tensor names from
``gguf.get_tensor_name_map``, q/k rows permuted for llama.cpp's rope layout, a byte-level (``gpt2``)
vocabulary with merges, specials marked as control tokens, no ``output.weight`` (tied embeddings).
The token embedding is stored Q8_0 (quantized, as in real files), everything else F32, so the model
transformers dequantizes from the file can be checked against the model that was written.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")  # ids 0..3
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")  # ChatML


def _tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=512, special_tokens=list(SPECIALS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<unk>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _permute(w, n_head: int):  # untyped: numpy array; llama.cpp convert_hf_to_gguf's permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(out_dir: Path, *, architecture: str = "llama", seed: int = 0) -> tuple[Path, Path]:
    """Write ``tiny.gguf`` into ``out_dir``; returns (the file, a ``save_pretrained`` directory of the
    same model and tokenizer, the reference). ``architecture`` other than llama writes a file whose
    metadata names that architecture (for refusal tests); its tensors stay llama-shaped."""
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from gitops.ml.corpus import load_corpus

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer([row["text"] for row in load_corpus()[:400]])
    heads, kv_heads, hidden, layers = 4, 2, 64, 2
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=128,
                         rms_norm_eps=1e-5, tie_word_embeddings=True, initializer_range=0.2,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    embed = model.get_input_embeddings().weight
    with torch.no_grad():  # the reference holds what the file holds: the Q8_0-rounded embedding
        q8 = gguf.GGMLQuantizationType.Q8_0
        embed.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(embed.numpy(), q8), q8)))
    reference = out_dir / "reference"
    model.save_pretrained(reference)
    tok.save_pretrained(reference)

    path = out_dir / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny llama")
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(128)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    _write_vocab(writer, tok)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":
            continue  # tied: llama.cpp leaves output.weight out
        data = tensor.numpy().astype(np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name == "token_embd.weight":
            quant = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(data, quant), raw_dtype=quant)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, reference


def _write_vocab(writer, tok) -> None:  # untyped: a GGUFWriter and a fast tokenizer
    import gguf

    data = json.loads(tok.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_unk_token_id(vocab["<unk>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
