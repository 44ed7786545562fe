"""A frozen base's hidden states as one vector per row: what a classification head reads.

A row's rendered input is tokenized as a generation prompt is (:func:`gitops.ml.tokens.prompt_ids`,
cut to ``max_length`` by dropping the middle), and runs once through the base's decoder, without
its LM head (the logits over the vocabulary are never needed). Rows run in batches of similar
length, right-padded (positions start at 0 and causal attention never looks at the pads that
follow a row), under ``torch.inference_mode``. The hidden state at ``layer`` is pooled: ``last``
takes the last real token's, ``mean`` the mean over the real tokens.

``layer``: -1 is the decoder's output (after its final norm); N (1 up to the base's depth) the
output of its N-th block; -2 the output of the block before the last, and so on. A layer before
the last stops the forward pass there: a hook on that block raises with its output, so the blocks
after it never run (a middle layer costs half the compute, and often separates classes better).

torch is imported inside the functions that use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops.errors import ConfigError
from gitops.ml import tokens

POOLINGS = ("last", "mean")
BLOCK_LISTS = ("layers", "h", "blocks")  # where decoders keep their blocks (Llama/OPT/Qwen, GPT-2, others)


@dataclass(frozen=True)
class Pooling:
    """How rows become vectors: which hidden state, pooled how, from at most how many tokens."""

    pooling: str = "last"
    layer: int = -1
    max_length: int = 256

    def to_dict(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "layer": self.layer, "max_length": self.max_length}


class _Stop(Exception):
    """Raised by the hook on the chosen block: its output, and no block after it runs."""

    def __init__(self, hidden: Any) -> None:
        super().__init__("stop")
        self.hidden = hidden


class Embedder:
    """Pooled hidden states of a causal LM (a transformers model and its tokenizer), one per text."""

    def __init__(self, model: Any, tokenizer: Any, pooling: Pooling, label: str = "the base") -> None:
        if pooling.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, not '{pooling.pooling}'")
        self.tokenizer, self.pooling = tokenizer, pooling
        self.decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
        self.device = next(model.parameters()).device
        self.dim = int(model.config.hidden_size)
        self.stop_after = _stop_block(self.decoder, pooling.layer, label)
        self._lock = threading.Lock()  # the stop hook is hung on a shared block for one call at a time

    def encode(self, text: str) -> list[int]:
        """The ids a row's input runs as: the prompt's ids, the middle dropped past ``max_length``."""
        return tokens.prompt_ids(self.tokenizer, text, keep=self.pooling.max_length)

    def embed_ids(self, batch: list[list[int]]) -> Any:
        """One forward pass over ``batch`` (ids from :meth:`encode`): a float32 numpy array (rows, dim)."""
        import torch

        with torch.inference_mode():
            return self.pooled(batch).cpu().numpy()

    def pooled(self, batch: list[list[int]]) -> Any:
        """The pooled hidden states of ``batch`` as a float32 torch tensor (rows, dim), in the caller's
        grad mode: a head trained with the base's LoRA layers (``adapter: {type: lora, head: true}``)
        backpropagates through it."""
        import torch

        from gitops.ml.backends import pad_ids

        ids, mask = pad_ids(batch, tokens.pad_id(self.tokenizer), left=False, device=self.device)
        with self._lock:
            hidden = self._hidden(ids, mask).float()
        if self.pooling.pooling == "last":
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)

    def _hidden(self, ids: Any, mask: Any) -> Any:
        """The hidden state at ``layer`` for every position (the forward stops at that block)."""
        hook = None
        if self.stop_after is not None:
            def stop(_module: Any, _inputs: Any, output: Any) -> None:
                raise _Stop(output[0] if isinstance(output, tuple) else output)

            hook = self.stop_after.register_forward_hook(stop)
        try:
            return self.decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        except _Stop as stopped:
            return stopped.hidden
        finally:
            if hook is not None:
                hook.remove()

    def embed(self, texts: list[str], batch_size: int = 32,
              progress: Callable[[int, int], None] | None = None) -> Any:
        """Vectors of ``texts`` in their order, computed in batches of similar length (shortest first)."""
        import numpy as np

        ids = [self.encode(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            out[index] = self.embed_ids([ids[i] for i in index])
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
        return out


def blocks_of(decoder: Any) -> Any:
    """The decoder's list of blocks, or None when it keeps them under no name gitops knows."""
    import torch

    for name in BLOCK_LISTS:
        found = getattr(decoder, name, None)
        if isinstance(found, torch.nn.ModuleList) and len(found):
            return found
    return None


def _stop_block(decoder: Any, layer: int, label: str) -> Any:
    """The block whose output is the hidden state ``layer`` names (None: the decoder's own output)."""
    if layer == -1:
        return None
    blocks = blocks_of(decoder)
    if blocks is None:
        raise ConfigError(f"head.layer {layer}: {label} ({type(decoder).__name__}) keeps its layers under no name "
                          f"gitops knows ({', '.join(BLOCK_LISTS)}); use layer -1")
    depth = len(blocks)
    number = depth + 1 + layer if layer < 0 else layer
    if not 1 <= number <= depth:
        raise ConfigError(f"head.layer {layer}: {label} has {depth} layers, so a layer is -1 to -{depth} or 1 to "
                          f"{depth}")
    return blocks[number - 1]
