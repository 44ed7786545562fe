"""The one tokenization of gitops: training, scoring and generation all go through here.

Why one module: a model is trained on some token ids and then scored and asked to generate from
others; if BOS, EOS or padding differ between the three, a perplexity is measured on sequences the
model never saw the shape of (issue 10: eval prepended BOS on llama tokenizers, training did not).
The rules, the same for every family:

- a text is encoded with the tokenizer's **own** special-token behaviour (``add_special_tokens``):
  OPT's tokenizer prepends ``</s>``, Llama-2's ``<s>``, SmolLM2's and GPT-2's nothing. gitops never
  prepends a BOS by hand: on SmolLM2 the "BOS" is the ChatML ``<|im_start|>`` marker;
- a text to learn or to score ends with EOS (appended once, as an id, unless the tokenizer already
  put it last), so the model learns where a row ends and scoring counts that end;
- text already formatted by a chat template (``chat=True``) carries its own markers: no special
  tokens are added and no EOS is appended (the template closes the turn itself);
- the first id of a sequence is never scored (CTranslate2's ``score_batch`` conditions on it);
  training's loss shifts the same way, so both see the same predictions;
- padding uses the tokenizer's pad id, else its EOS, else 0: padded positions are masked out
  everywhere, so a tokenizer without a pad token works.
"""

from __future__ import annotations

from typing import Any


def text_ids(tokenizer: Any, text: str, *, chat: bool = False) -> list[int]:
    """The ids of ``text`` as the tokenizer's own special-token rules make them."""
    return list(tokenizer(text, add_special_tokens=not chat)["input_ids"])


def sequence_ids(tokenizer: Any, text: str, *, max_length: int | None = None, chat: bool = False) -> list[int]:
    """A text to learn from or to score: its ids, EOS last (not for chat text), cut to ``max_length``."""
    ids = text_ids(tokenizer, text, chat=chat)
    eos = tokenizer.eos_token_id
    if not chat and eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return ids[:max_length] if max_length is not None else ids


def prompt_ids(tokenizer: Any, text: str, *, keep: int | None = None, chat: bool = False) -> list[int]:
    """The ids generation starts from; when more than ``keep``, the special tokens the tokenizer put
    first (a BOS) and the prompt's end are kept, the middle is dropped."""
    return fit_ids(tokenizer, text_ids(tokenizer, text, chat=chat), keep)


def fit_ids(tokenizer: Any, ids: list[int], keep: int | None) -> list[int]:
    """``ids`` cut to ``keep`` tokens (None: uncut) by dropping the middle: the special tokens the
    tokenizer put first and the end are kept (what :func:`prompt_ids` does to a long prompt)."""
    if keep is None or len(ids) <= keep:
        return ids
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    head = 0
    while head < len(ids) and head < keep - 1 and ids[head] in special:
        head += 1
    return ids[:head] + ids[len(ids) - (keep - head):]


def pad_id(tokenizer: Any) -> int:
    """The id that fills padded positions (always masked): pad, else EOS, else 0."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


def chat_text(tokenizer: Any, user: str, assistant: str | None = None) -> str:
    """One conversation through the tokenizer's chat template, as text: the user turn and, when
    given, the assistant's answer; without one, the text ends where the assistant starts."""
    from gitops.errors import ConfigError

    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("prompt.chat is true, but the model's tokenizer has no chat template; set "
                          "prompt.chat: false or use a model with one")
    messages = [{"role": "user", "content": user}]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    # transformers 5 returns a BatchEncoding unless told otherwise: ask for the text explicitly.
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=assistant is None)


def pad_ids(batch: list[list[int]], pad_id: int, *, left: bool, device):  # untyped: torch
    """``batch`` as (ids, attention mask) tensors on ``device``, padded on the left or the right."""
    import torch

    width = max(len(x) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, seq in enumerate(batch):
        sl = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[i, sl] = torch.tensor(seq, dtype=torch.long)
        mask[i, sl] = 1
    return ids.to(device), mask.to(device)
