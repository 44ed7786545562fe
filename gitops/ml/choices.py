"""Scoring a fixed set of continuations (a task's labels) after each prompt: constrained decoding.

Instead of generating freely and extracting a label from the text, every label is scored as the
continuation of the prompt (the sum of its tokens' log-probabilities, natural log) and the best one
is the prediction, so the answer is always a label.

Tokenization at the boundary: a continuation is tokenized *together with its prompt* (the text
``prompt + continuation``, through :func:`gitops.ml.tokens.text_ids`), as training tokenizes a
prompt and its response; the tokens after the longest common prefix with the prompt's own ids are
the ones scored. With a prompt ending in a non-space character and a continuation starting with a
space (the `" {label}"` a classification fine-tune learns) that is exactly the prompt's ids followed
by the label's.

Cost, per batch of rows: labels that are one token each after every prompt take a single forward
pass over the prompts; on transformers, labels after a shared prompt run it once and only their
own tokens after the cached prompt; on CTranslate2, labels that differ only in their last token
(" 1" ... " 5" on SmolLM2 are "Ġ" and the digit) take two passes; otherwise every (prompt, label)
sequence is scored in one engine call. A long context loses its middle, as generation does.

Note the sum favours short labels over longer ones that start the same way ("1" over "10"): it is
the model's probability of the whole label text, with no length normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitops.ml import tokens


@dataclass(frozen=True)
class Choice:
    """One continuation of one prompt: ``context`` ids, then the ``scored`` ids whose log-probs sum."""

    context: list[int]
    scored: list[int]


def continuation_text(prompt: str, label: str) -> str:
    """The text a label is scored as after ``prompt``: ``" " + label`` (the training format's
    response), or the bare label when the prompt already ends in whitespace."""
    return label if not prompt or prompt[-1].isspace() else " " + label


def choices(tokenizer, prompts: list[str], labels: list[str], max_length: int | None, *,
            chat: bool = False) -> list[list[Choice]]:
    """Per prompt, per label, the context and scored ids (joint tokenization, see the module doc).
    ``chat``: the prompts are chat-template text, which carries its own special tokens."""
    texts = [p + continuation_text(p, label) for p in prompts for label in labels]
    joint = [list(ids) for ids in tokenizer(texts, add_special_tokens=not chat)["input_ids"]]
    own = [list(ids) for ids in tokenizer(prompts, add_special_tokens=not chat)["input_ids"]]
    out: list[list[Choice]] = []
    for i, p_ids in enumerate(own):
        row = []
        for j in range(len(labels)):
            full = joint[i * len(labels) + j]
            n = _common_prefix(p_ids, full)
            n = max(1, min(n, len(full) - 1))  # the first token is never scored; a label scores >= 1
            row.append(Choice(_fit(tokenizer, full[:n], max_length, len(full) - n), full[n:]))
        out.append(row)
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _fit(tokenizer, context: list[int], max_length: int | None, scored: int) -> list[int]:
    return context if max_length is None else tokens.fit_ids(tokenizer, context, max(2, max_length - scored))


MAX_SEQUENCES = 1024  # (row, label) pairs per engine call: a 1,000-label task still fits in memory


def score_labels(backend, prompts: list[str], labels: list[str], *,
                 chat: bool = False) -> list[list[tuple[float, int]]]:
    """Per prompt, per label: (sum of the label's token log-probs, its token count), in one or two
    engine calls per group of rows (callers pass one batch; many labels split it further).
    ``chat``: the prompts are chat-template text (no special tokens added)."""
    step = max(1, MAX_SEQUENCES // len(labels))
    out: list[list[tuple[float, int]]] = []
    for start in range(0, len(prompts), step):
        out += _score_rows(backend, prompts[start:start + step], labels, chat)
    return out


def _score_rows(backend, prompts: list[str], labels: list[str], chat: bool) -> list[list[tuple[float, int]]]:
    rows = choices(backend.tokenizer, prompts, labels, backend.max_length, chat=chat)
    single = all(len(c.scored) == 1 and c.context == row[0].context for row in rows for c in row)
    if single:
        logps = _next_token_logprobs(backend, [row[0].context for row in rows])
        return [[(float(lp[c.scored[0]]), 1) for c in row] for row, lp in zip(rows, logps, strict=True)]
    shared = all(c.context == row[0].context for row in rows for c in row)
    if backend.fmt != "ct2" and shared:
        return _hf_shared_context(backend, rows)
    if backend.fmt == "ct2" and shared and all(c.scored[:-1] == row[0].scored[:-1] for row in rows for c in row):
        return _ct2_shared_head(backend, rows)
    flat = [c for row in rows for c in row]
    sums = _sequence_logprobs(backend, flat)
    return [[(sums[i * len(labels) + j], len(c.scored)) for j, c in enumerate(row)] for i, row in enumerate(rows)]


def best(scores: list[tuple[float, int]]) -> int:
    """The index of the highest summed log-prob (the first one on a tie, in label order)."""
    return max(range(len(scores)), key=lambda j: (scores[j][0], -j))


def probabilities(scores: list[tuple[float, int]]) -> list[float]:
    """The labels' probabilities given that the answer is one of them: a softmax of their summed
    log-likelihoods (the model's probability of each whole label text, renormalised over the
    labels). The likeliest is :func:`best`'s; they sum to 1."""
    import math

    top = max(s for s, _ in scores)
    weights = [math.exp(s - top) for s, _ in scores]
    total = sum(weights)
    return [w / total for w in weights]


# --- engines ------------------------------------------------------------------------------------

def _next_token_logprobs(backend, contexts: list[list[int]]):
    """Per context, the log-probs over the vocabulary of the token after it (numpy rows)."""
    import numpy as np

    if backend.fmt == "ct2":
        # generate_batch's first-step logits are right only for rows as long as the batch's shortest
        # prompt (longer prompts are still being forced then): one call per prompt length.
        out: list[Any] = [None] * len(contexts)
        for length in sorted({len(c) for c in contexts}):
            group = [i for i, c in enumerate(contexts) if len(c) == length]
            results = backend.generator.generate_batch(  # a shared prefix as the static prompt
                **backend.static_prompt([contexts[i] for i in group]), max_length=1,
                beam_size=1, sampling_topk=1, include_prompt_in_result=False, return_logits_vocab=True)
            for i, r in zip(group, results, strict=True):
                out[i] = np.asarray(r.logits[0][0], dtype=np.float64)
        return _log_softmax(np.stack(out))
    import torch

    logits = _hf_logits(backend, contexts, keep=1)[:, -1]
    return torch.log_softmax(logits.double(), -1).numpy()


def _sequence_logprobs(backend, flat: list[Choice]) -> list[float]:
    """Per choice, the sum of its scored tokens' log-probs given everything before them."""
    if backend.fmt == "ct2":
        seqs = [backend.tokenizer.convert_ids_to_tokens(c.context + c.scored) for c in flat]
        results = backend.generator.score_batch(seqs, max_input_length=0)
        # log_probs has one entry per token after the first: the last len(scored) are the label's
        return [float(sum(r.log_probs[len(r.log_probs) - len(c.scored):])) for r, c in zip(results, flat, strict=True)]
    import torch

    width = max(len(c.scored) for c in flat)
    seqs = [c.context + c.scored for c in flat]
    logits = _hf_logits(backend, seqs, keep=width + 1)            # left-padded: every row ends at the last column
    logp = torch.log_softmax(logits[:, :-1].double(), -1)         # position t predicts the token at t + 1
    out = []
    for i, c in enumerate(flat):
        target = torch.tensor(c.scored)
        rows = logp[i, width - len(c.scored):]
        out.append(float(rows.gather(-1, target[:, None]).sum()))
    return out


def _hf_shared_context(backend, rows: list[list[Choice]]) -> list[list[tuple[float, int]]]:
    """transformers, each row's labels after one shared context: the contexts run once (KV cache
    kept), the cache is repeated per label and only the labels' tokens run after it."""
    import torch

    from gitops.ml.backends import pad_ids
    from gitops.ml.prefix import cache_kwarg, hf_inputs

    n_labels, pad = len(rows[0]), tokens.pad_id(backend.tokenizer)
    ids, mask, prefix_cache, n = hf_inputs(backend, [row[0].context for row in rows])  # a shared prefix runs once
    cache_kw = cache_kwarg(backend.model)
    with torch.inference_mode():
        out = backend.model(input_ids=ids[:, n:], attention_mask=mask, use_cache=True, logits_to_keep=1,
                            position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, n:],
                            **({} if prefix_cache is None else {cache_kw: prefix_cache}))
        first = torch.log_softmax(out.logits[:, -1].double(), -1).cpu()   # predicts each label's first token
        flat = [c for row in rows for c in row]
        width = max(len(c.scored) for c in flat) - 1
        rest: Any = None
        if width:
            # transformers 5.24 names the KV cache `cache` (`past_key_values` before, deprecated now)
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            cache.batch_repeat_interleave(n_labels)
            tail, tail_mask = pad_ids([c.scored[:-1] or [pad] for c in flat], pad, left=False, device=backend.device)
            tail_mask = tail_mask * torch.tensor([[1 if len(c.scored) > 1 else 0] for c in flat], device=backend.device)
            start = mask.sum(-1).repeat_interleave(n_labels)[:, None]
            positions = start + torch.arange(tail.shape[1], device=backend.device)[None, :]
            full_mask = torch.cat([mask.repeat_interleave(n_labels, 0), tail_mask], -1)
            rest = backend.model(input_ids=tail, attention_mask=full_mask, position_ids=positions,
                                 **{cache_kw: cache}).logits
            rest = torch.log_softmax(rest.double(), -1).cpu()            # position t predicts scored[t + 1]
    out_rows = []
    for i, row in enumerate(rows):
        scores = []
        for j, c in enumerate(row):
            total = float(first[i, c.scored[0]])
            for t, token in enumerate(c.scored[1:]):
                total += float(rest[i * n_labels + j, t, token])
            scores.append((total, len(c.scored)))
        out_rows.append(scores)
    return out_rows


def _ct2_shared_head(backend, rows: list[list[Choice]]) -> list[list[tuple[float, int]]]:
    """CTranslate2, each row's labels differing only in their last token (SmolLM2's " 1" ... " 5"
    are "Ġ" then the digit): the shared head scored once per row, the last token from the
    next-token distribution after it; two passes over the batch instead of one per label."""
    heads = [row[0].context + row[0].scored[:-1] for row in rows]
    results = backend.generator.score_batch([backend.tokenizer.convert_ids_to_tokens(h) for h in heads],
                                            max_input_length=0)
    logps = _next_token_logprobs(backend, heads)
    out = []
    for row, r, lp in zip(rows, results, logps, strict=True):
        n = len(row[0].scored) - 1                  # the head's scored tokens: the last n log-probs
        head = float(sum(r.log_probs[len(r.log_probs) - n:])) if n else 0.0
        out.append([(head + float(lp[c.scored[-1]]), len(c.scored)) for c in row])
    return out


def _hf_logits(backend, seqs: list[list[int]], keep: int):
    """Logits of the last ``keep`` positions of each sequence, left-padded, positions counted from
    each row's first real token (so padding changes nothing)."""
    import torch

    from gitops.ml.prefix import cache_kwarg, hf_inputs

    # a prefix all sequences share runs once, from its kept KV cache; the last `keep` positions stay out of it
    input_ids, mask, cache, n = hf_inputs(backend, seqs, own=keep)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        out = backend.model(input_ids=input_ids[:, n:], attention_mask=mask, position_ids=positions[:, n:],
                            logits_to_keep=keep, **({} if cache is None else {cache_kwarg(backend.model): cache}))
    return out.logits[:, -keep:].float().cpu()


def _log_softmax(x):
    import numpy as np

    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
