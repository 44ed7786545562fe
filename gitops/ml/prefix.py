"""Shared-prefix reuse: the tokens every prompt of a batch starts with are computed once.

A prompt version renders every row as the same instruction (and, for ``retrieval: none`` or a
fixed random draw, the same examples) followed by the row. The engines recompute that shared
start for every row of every batch unless told otherwise; here a batch's prompt ids are split
into a prefix, which the engine runs once and reuses, and each row's rest:

- CTranslate2: the prefix is ``generate_batch``'s ``static_prompt`` (the model state after it is
  tiled over the batch, and cached inside the model for later calls while
  ``cache_static_prompt`` is on). Only generation takes it; ``score_batch`` has no such option.
  The static prompt runs at batch 1 where the whole batch ran it before, so an int8 model's
  rounding can differ in the last bits (and flip a close greedy choice); float32 agrees to float
  rounding.
- transformers: the prefix's KV cache is computed once (batch 1), kept, copied and repeated over
  the batch; the rows' rests follow it, left-padded after the prefix, with positions counted from
  each row's real tokens, so every row sees exactly the positions and tokens it saw unsplit.

The prefix is the longest common token prefix of the batch (at least ``MIN_PREFIX`` tokens, and
each row keeps one token of its own). A prefix found once is tried first on later batches (the
instruction stays, the row after it changes), so a command reuses one prefix for all its batches;
at most ``MAX_PREFIXES`` are remembered, and CTranslate2 is asked to cache at most that many ever
(its cache is not bounded, and lives as long as the model).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

MIN_PREFIX = 8      # shorter shared starts cost more to split than they save
MAX_PREFIXES = 8    # remembered prefixes (and transformers KV caches kept) per backend


@dataclass
class PrefixStats:
    """What reuse did on one backend: engine calls that reused a prefix, the positions that were
    not recomputed (prefix length x (rows - 1), plus the whole prefix when it came from the cache),
    and the last prefix length used (0: the last call ran unsplit)."""

    calls: int = 0
    saved_tokens: int = 0
    last: int = 0


@dataclass
class PrefixPlanner:
    """Chooses, per engine call, how many leading tokens of a batch run once."""

    enabled: bool = True
    min_tokens: int = MIN_PREFIX
    stats: PrefixStats = field(default_factory=PrefixStats)
    known: OrderedDict[tuple[int, ...], None] = field(default_factory=OrderedDict)
    engine_cached: set[tuple[int, ...]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # a server may score and generate at once

    def split(self, batch: list[list[int]], own: int = 1) -> tuple[int, ...]:
        """The prefix every row of ``batch`` starts with, to compute once (empty: run unsplit);
        every row keeps at least its last ``own`` tokens out of it (those whose logits are wanted)."""
        with self.lock:
            return self._split(batch, own)

    def _split(self, batch: list[list[int]], own: int) -> tuple[int, ...]:
        self.stats.last = 0
        if not self.enabled or not batch:
            return ()
        cap = min(len(row) for row in batch) - own
        for prefix in sorted(self.known, key=len, reverse=True):
            if len(prefix) <= cap and all(tuple(row[:len(prefix)]) == prefix for row in batch):
                self.known.move_to_end(prefix)
                return self._used(prefix, len(batch), cached=True)
        if len(batch) < 2:
            return ()
        n = min(common_prefix(batch), cap)
        if n < self.min_tokens:
            return ()
        prefix = tuple(batch[0][:n])
        self.known[prefix] = None
        while len(self.known) > MAX_PREFIXES:
            self.known.popitem(last=False)
        return self._used(prefix, len(batch), cached=False)

    def engine_may_cache(self, prefix: tuple[int, ...]) -> bool:
        """Whether an engine that never forgets (CTranslate2's state cache) may keep this prefix."""
        with self.lock:
            return self._may_cache(prefix)

    def _may_cache(self, prefix: tuple[int, ...]) -> bool:
        if prefix in self.engine_cached or len(self.engine_cached) < MAX_PREFIXES:
            self.engine_cached.add(prefix)
            return True
        return False

    def _used(self, prefix: tuple[int, ...], rows: int, *, cached: bool) -> tuple[int, ...]:
        self.stats.calls += 1
        self.stats.saved_tokens += len(prefix) * (rows - (0 if cached else 1))
        self.stats.last = len(prefix)
        return prefix


def common_prefix(batch: list[list[int]]) -> int:
    """The length of the longest token prefix all rows share."""
    first = batch[0]
    n = min(len(row) for row in batch)
    for row in batch[1:]:
        i = 0
        while i < n and row[i] == first[i]:
            i += 1
        n = i
    return n


class KVStore:
    """transformers: the KV cache of each remembered prefix (batch 1), copied per call."""

    def __init__(self) -> None:
        self._caches: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def expanded(self, model: Any, prefix: tuple[int, ...], rows: int, device: Any) -> Any:
        """A fresh cache holding ``prefix`` for each of ``rows`` rows (the stored one is not touched)."""
        with self._lock:
            return self._expanded(model, prefix, rows, device)

    def _expanded(self, model: Any, prefix: tuple[int, ...], rows: int, device: Any) -> Any:
        import copy

        import torch

        cache = self._caches.get(prefix)
        if cache is None:
            ids = torch.tensor([list(prefix)], dtype=torch.long, device=device)
            with torch.inference_mode():
                out = model(input_ids=ids, use_cache=True)
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            self._caches[prefix] = cache
            while len(self._caches) > MAX_PREFIXES:
                self._caches.popitem(last=False)
        self._caches.move_to_end(prefix)
        layers = getattr(cache, "layers", None)
        if layers is not None and all(type(layer).__name__ == "DynamicLayer" for layer in layers):
            # A DynamicLayer never writes into its tensors (an update concatenates into new ones):
            # copying the cache and its layers, not the tensors, leaves the kept prefix untouched.
            fresh = copy.copy(cache)
            fresh.layers = [copy.copy(layer) for layer in layers]
        else:
            fresh = copy.deepcopy(cache)
        if rows > 1:
            fresh.batch_repeat_interleave(rows)
        return fresh


def cache_kwarg(model: Any) -> str:
    """The name a model's forward (and generate) takes a KV cache by: transformers 5.24 renamed
    ``past_key_values`` to ``cache``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def hf_inputs(backend: Any, seqs: list[list[int]], own: int = 1) -> tuple[Any, Any, Any, int]:
    """``seqs`` as (ids, mask, cache, n) for a transformers forward or generate: the shared prefix
    of ``n`` tokens first (in ``cache`` when ``n`` > 0, None otherwise), then each row's rest
    left-padded; each row keeps its last ``own`` tokens out of the prefix. Positions are
    ``mask.cumsum(-1) - 1``: every row's tokens keep the positions they have unsplit and
    left-padded. A forward then takes ``ids[:, n:]``; generate takes all of it."""
    import torch

    from gitops.ml import tokens
    from gitops.ml.tokens import pad_ids

    prefix = backend.prefixes.split(seqs, own)
    n = len(prefix)
    ids, mask = pad_ids([s[n:] for s in seqs], tokens.pad_id(backend.tokenizer), left=True, device=backend.device)
    if not n:
        return ids, mask, None, 0
    head = torch.tensor([list(prefix)], dtype=torch.long, device=backend.device).expand(len(seqs), n)
    ids = torch.cat([head, ids], -1)
    mask = torch.cat([torch.ones_like(head), mask], -1)
    return ids, mask, backend.kv.expanded(backend.model, prefix, len(seqs), backend.device), n
