"""One interface for generation and scoring over every weight format (hf, peft-lora, ct2).

Evaluation compares a candidate with a baseline that may be stored in another format, so both
must see the same token ids and the same decoding rules: every text is tokenized by
:mod:`gitops.ml.tokens` (the one tokenization training uses too), with the model's own tokenizer
and its own special-token rules, decoding is greedy unless asked otherwise, and
``max_new_tokens`` counts only generated tokens. Scoring returns the summed negative
log-likelihood in nats of every token after the first (the text's tokens and the closing EOS),
which agrees between hf and ct2 float32 to float rounding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import ConfigError, EvalError, NotFoundError
from gitops.ml import tokens
from gitops.ml.prefix import KVStore, PrefixPlanner, cache_kwarg, hf_inputs
from gitops.ml.tokens import pad_ids  # where it lives now; callers import it from here too

FORMATS = ("hf", "peft-lora", "ct2")
SAMPLING_TOP_K = 50  # only used when greedy=False; the same for both engines


@dataclass(frozen=True)
class Generation:
    """One completion: the continuation only (prompt excluded), its token count without the
    end token, and the wall time of the batch it was generated in."""

    text: str
    new_tokens: int
    seconds: float


@dataclass(frozen=True)
class Sampling:
    """Decoding settings shared by one batch: greedy when ``temperature`` is 0, else sampling from
    the whole distribution scaled by ``temperature`` and cut to the nucleus ``top_p`` (no top-k, the
    OpenAI semantics). ``seed`` makes a sampled completion reproducible: each seeded row is sampled
    on its own generator, whatever else is in the batch."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


GREEDY = Sampling()

TokenCallback = Callable[[int, int], bool]
"""``on_token(row, token_id)``: called in order for each generated token but the end token; True
stops that row (a stop string matched, the client went away, its deadline passed)."""


class _Rows:
    """Per-row bookkeeping for :meth:`Backend.generate_tokens`: collects ids, enforces each row's
    own ``max_new_tokens``, ends a row at the end token, forwards tokens to the callback."""

    def __init__(self, limits: list[int], eos: int | None, on_token: TokenCallback | None) -> None:
        self.limits, self.eos, self.on_token = limits, eos, on_token
        self.tokens: list[list[int]] = [[] for _ in limits]
        self.done = [False] * len(limits)

    def step(self, row: int, token: int) -> bool:
        """Take ``token`` for ``row``; True when the row is finished (now or before)."""
        if self.done[row]:
            return True
        if token == self.eos:
            self.done[row] = True
            return True
        self.tokens[row].append(token)
        stop = self.on_token is not None and bool(self.on_token(row, token))
        if stop or len(self.tokens[row]) >= self.limits[row]:
            self.done[row] = True
        return self.done[row]


class Backend:
    """Shared batching, tokenization and timing; subclasses run one engine's forward passes."""

    fmt = ""

    def __init__(self, tokenizer, path: Path) -> None:
        self.tokenizer = tokenizer
        self.path = Path(path)
        limit = getattr(tokenizer, "model_max_length", None) or 0
        self.max_length = limit if 0 < limit < 1_000_000 else None  # None: no known limit
        self.prefixes = PrefixPlanner()  # shared-prefix reuse (gitops.ml.prefix); .enabled = False turns it off

    def generate(self, prompts: list[str], *, max_new_tokens: int, batch_size: int = 16,
                 greedy: bool = True, chat: bool = False) -> list[Generation]:
        """Complete each prompt with at most ``max_new_tokens`` tokens, in batches. ``chat``: the
        prompts are already chat-formatted text (:func:`gitops.ml.tokens.chat_text`)."""
        if max_new_tokens < 1 or batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be at least 1.")
        keep = None if self.max_length is None else max(2, self.max_length - max_new_tokens)
        ids = [tokens.prompt_ids(self.tokenizer, p, keep=keep, chat=chat) for p in prompts]
        out: list[Generation] = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            t0 = time.perf_counter()
            new = self._generate_ids(chunk, max_new_tokens, greedy)
            seconds = time.perf_counter() - t0
            out += [Generation(self.tokenizer.decode(seq, skip_special_tokens=True),
                               len(seq), seconds) for seq in new]
        return out

    def generate_encoded(self, ids: list[list[int]], *, max_new_tokens: int) -> list[Generation]:
        """Greedy completions of prompts already encoded by :meth:`encode`, in one engine batch (a
        caller that needs the ids anyway tokenizes once); a prompt too long loses its middle."""
        keep = None if self.max_length is None else max(2, self.max_length - max_new_tokens)
        batch = [tokens.fit_ids(self.tokenizer, x, keep) for x in ids]
        t0 = time.perf_counter()
        new = self._generate_ids(batch, max_new_tokens, True)
        seconds = time.perf_counter() - t0
        return [Generation(self.decode(seq), len(seq), seconds) for seq in new]

    def score(self, texts: list[str], *, batch_size: int = 16, chat: bool = False) -> list[tuple[float, int]]:
        """Per text: (sum of token negative log-likelihoods in nats, number of tokens scored).
        ``chat``: the texts are already chat-formatted."""
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1.")
        ids = [tokens.sequence_ids(self.tokenizer, t, max_length=self.max_length, chat=chat) for t in texts]
        out: list[tuple[float, int]] = []
        for start in range(0, len(ids), batch_size):
            out += self._score_batch(ids[start:start + batch_size])
        return out

    def encode(self, text: str, *, chat: bool = False) -> list[int]:
        """The token ids generation starts from (:func:`gitops.ml.tokens.prompt_ids`), untruncated:
        a server checks the length itself and refuses what does not fit instead of cutting the
        prompt silently. ``chat``: ``text`` is chat-template text (it carries its special tokens)."""
        return tokens.prompt_ids(self.tokenizer, text, chat=chat)

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special tokens dropped (as :meth:`generate` decodes)."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def generate_tokens(self, batch: list[list[int]], max_new_tokens: list[int], *,
                        sampling: Sampling = GREEDY,
                        on_token: TokenCallback | None = None) -> list[list[int]]:
        """Continue each row of prompt ids (from :meth:`encode`) in one engine batch.

        Rows have their own ``max_new_tokens``; ``on_token`` sees each token as it is generated
        (streaming) and may end its row early. Returns each row's new ids, end token excluded.
        Prompt plus new tokens must fit the model's context (``max_length``).
        """
        if len(max_new_tokens) != len(batch) or not batch:
            raise ConfigError("generate_tokens needs one max_new_tokens per row, and a row.")
        if min(max_new_tokens) < 1 or min(len(ids) for ids in batch) < 1:
            raise ConfigError("every row needs a prompt token and max_new_tokens of at least 1.")
        if self.max_length is not None:
            longest = max(len(ids) + n for ids, n in zip(batch, max_new_tokens))
            if longest > self.max_length:
                raise ConfigError(f"a prompt plus its new tokens needs {longest} positions; the "
                                  f"model has {self.max_length}.")
        rows = _Rows(list(max_new_tokens), self.tokenizer.eos_token_id, on_token)
        if on_token is None and (sampling.greedy or sampling.seed is None):
            # Nobody watches the tokens: one call, rows cut afterwards (no per-token Python hook,
            # which costs CTranslate2 a GIL round trip per token and row).
            for row, seq in enumerate(self._generate_rows(batch, max(max_new_tokens), sampling)):
                for token in seq:
                    if rows.step(row, token):
                        break
        elif sampling.greedy or sampling.seed is None:
            self._generate_steps(batch, max(max_new_tokens), sampling, rows.step)
        else:
            for i, ids in enumerate(batch):  # each seeded row on its own generator
                def on_token(_row: int, token: int, i: int = i) -> Any:
                    return rows.step(i, token)

                self._generate_seeded(ids, max_new_tokens[i], sampling, on_token)
        return rows.tokens

    def close(self) -> None:
        """Release the model (memory, threads). The backend is unusable afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _cut_at_eos(self, seq: list[int]) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return seq[:seq.index(eos)] if eos in seq else seq

    def _generate_ids(self, batch: list[list[int]], max_new: int, greedy: bool) -> list[list[int]]:
        raise NotImplementedError

    def _score_batch(self, batch: list[list[int]]) -> list[tuple[float, int]]:
        raise NotImplementedError

    def _generate_steps(self, batch: list[list[int]], max_new: int, sampling: Sampling,
                        step: Callable[[int, int], bool]) -> None:
        """Run one batch, calling ``step(row, token)`` per generated token (end token included);
        a True answer ends that row."""
        raise NotImplementedError

    def _generate_seeded(self, ids: list[int], max_new: int, sampling: Sampling,
                         step: Callable[[int, int], bool]) -> None:
        """Sample one row reproducibly from ``sampling.seed``."""
        raise NotImplementedError

    def _generate_rows(self, batch: list[list[int]], max_new: int, sampling: Sampling) -> list[list[int]]:
        """Each row's new ids in one call (engines with a cheaper path than steps override this)."""
        out: list[list[int]] = [[] for _ in batch]
        eos = self.tokenizer.eos_token_id

        def collect(row: int, token: int) -> bool:
            out[row].append(token)
            return token == eos

        self._generate_steps(batch, max_new, sampling, collect)
        return out


class HFBackend(Backend):
    """transformers (and peft) models: left-padded batched ``generate``, one forward to score."""

    def __init__(self, model, tokenizer, path: Path, fmt: str) -> None:
        super().__init__(tokenizer, path)
        self.model, self.fmt = model, fmt
        self.device = next(model.parameters()).device
        self.kv = KVStore()  # the KV caches of shared prompt prefixes

    def _generate_ids(self, batch: list[list[int]], max_new: int, greedy: bool) -> list[list[int]]:
        import torch
        from transformers import GenerationConfig

        pad = tokens.pad_id(self.tokenizer)
        input_ids, mask, cache, _ = hf_inputs(self, batch)  # a shared prefix comes from its kept KV cache
        extra = {} if cache is None else {cache_kwarg(self.model): cache}
        # An explicit config, so a generation_config.json saved with the weights cannot change
        # the decoding rules between candidate and baseline.
        cfg = GenerationConfig(max_new_tokens=max_new, do_sample=not greedy, num_beams=1,
                               top_k=SAMPLING_TOP_K if not greedy else None, top_p=None,
                               temperature=None if greedy else 1.0,
                               pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
                               bos_token_id=self.tokenizer.bos_token_id)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask,
                                      generation_config=cfg, **extra)
        return [self._cut_at_eos(row.tolist()) for row in out[:, input_ids.shape[1]:]]

    def _score_batch(self, batch: list[list[int]]) -> list[tuple[float, int]]:
        import torch

        # Right padding: positions start at 0 for every row, and causal attention never looks
        # at the pads that follow a row's last token.
        input_ids, mask = pad_ids(batch, tokens.pad_id(self.tokenizer), left=False, device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()
        logp = logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None])[..., 0]
        logp = logp * mask[:, 1:]
        return [(-float(logp[i].sum()), len(seq) - 1) for i, seq in enumerate(batch)]

    def _generate_steps(self, batch: list[list[int]], max_new: int, sampling: Sampling,
                        step: Callable[[int, int], bool]) -> None:
        import torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        class PerToken(StoppingCriteria):
            """generate() calls this after every step with the ids so far: the per-token hook,
            and a per-row stop (the answer marks rows finished; the others go on)."""

            def __call__(self, input_ids, scores, **kwargs):
                last = input_ids[:, -1].tolist()
                return torch.tensor([step(i, t) for i, t in enumerate(last)],
                                    dtype=torch.bool, device=input_ids.device)

        pad = tokens.pad_id(self.tokenizer)
        input_ids, mask = pad_ids(batch, pad, left=True, device=self.device)
        cfg = GenerationConfig(max_new_tokens=max_new, num_beams=1, do_sample=not sampling.greedy,
                               temperature=None if sampling.greedy else sampling.temperature,
                               top_p=None if sampling.greedy else sampling.top_p,
                               top_k=None if sampling.greedy else 0,
                               pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
                               bos_token_id=self.tokenizer.bos_token_id)
        with torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=cfg,
                                stopping_criteria=StoppingCriteriaList([PerToken()]))

    def _generate_seeded(self, ids: list[int], max_new: int, sampling: Sampling,
                         step: Callable[[int, int], bool]) -> None:
        import torch

        # generate() samples from torch's global generator; one row alone draws the same numbers
        # for the same seed. Callers run one batch at a time per backend.
        torch.manual_seed(sampling.seed)
        self._generate_steps([ids], max_new, sampling, step)

    def close(self) -> None:
        self.model = None


class CT2Backend(Backend):
    """CTranslate2 ``Generator``: ``generate_batch`` and ``score_batch`` on token strings."""

    fmt = "ct2"

    def __init__(self, generator, tokenizer, path: Path) -> None:
        super().__init__(tokenizer, path)
        self.generator = generator

    def _tokens(self, ids: list[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids)

    def _generate_ids(self, batch: list[list[int]], max_new: int, greedy: bool) -> list[list[int]]:
        results = self.generator.generate_batch(
            **self.static_prompt(batch), max_length=max_new,
            sampling_topk=1 if greedy else SAMPLING_TOP_K, beam_size=1,
            include_prompt_in_result=False)  # max_length then counts new tokens only
        return [self._cut_at_eos(list(r.sequences_ids[0])) for r in results]

    def static_prompt(self, batch: list[list[int]]) -> dict:
        """``generate_batch``'s prompt arguments for ``batch``: the rows' shared prefix, when there
        is one, as its ``static_prompt`` (run once, tiled over the batch, cached in the model) and
        each row's rest as ``start_tokens`` (:mod:`gitops.ml.prefix`)."""
        prefix = self.prefixes.split(batch)
        if not prefix:
            return {"start_tokens": [self._tokens(ids) for ids in batch]}
        return {"start_tokens": [self._tokens(ids[len(prefix):]) for ids in batch],
                "static_prompt": self._tokens(list(prefix)),
                "cache_static_prompt": self.prefixes.engine_may_cache(prefix)}

    def _score_batch(self, batch: list[list[int]]) -> list[tuple[float, int]]:
        # score_batch does not score the first token (our BOS), like the hf path.
        results = self.generator.score_batch([self._tokens(ids) for ids in batch],
                                             max_input_length=0)
        return [(-float(sum(r.log_probs)), len(r.log_probs)) for r in results]

    def _generate_steps(self, batch: list[list[int]], max_new: int, sampling: Sampling,
                        step: Callable[[int, int], bool]) -> None:
        self.generator.generate_batch(
            [self._tokens(ids) for ids in batch], max_length=max_new, beam_size=1,
            sampling_topk=1 if sampling.greedy else 0,  # 0: the whole distribution
            sampling_topp=sampling.top_p, sampling_temperature=sampling.temperature or 1.0,
            include_prompt_in_result=False,
            callback=lambda s: step(s.batch_id, s.token_id))

    def _generate_rows(self, batch: list[list[int]], max_new: int, sampling: Sampling) -> list[list[int]]:
        results = self.generator.generate_batch(
            [self._tokens(ids) for ids in batch], max_length=max_new, beam_size=1,
            sampling_topk=1 if sampling.greedy else 0, sampling_topp=sampling.top_p,
            sampling_temperature=sampling.temperature or 1.0, include_prompt_in_result=False)
        return [list(r.sequences_ids[0]) for r in results]

    def _generate_seeded(self, ids: list[int], max_new: int, sampling: Sampling,
                         step: Callable[[int, int], bool]) -> None:
        # CTranslate2 seeds each of its worker threads once (set_random_seed does not reset a
        # thread already used), so a seed cannot be honoured through generate_batch: sample here
        # from the logits of forward_batch, one full forward per token (slower, no KV cache).
        import numpy as np

        rng = np.random.default_rng(sampling.seed)
        seq = list(ids)
        for _ in range(max_new):
            logits = np.asarray(self.generator.forward_batch([seq]))[0, -1].astype(np.float64)
            token = _sample(logits, sampling, rng)
            if step(0, token):
                return
            seq.append(token)

    def close(self) -> None:
        if self.generator is not None:
            self.generator.unload_model()
        self.generator = None


def open_backend(path: Path, fmt: str, *, base_dir: Path | str | None = None, device: str = "cpu",
                 threads: int | None = None) -> Backend:
    """Open the weights at ``path`` (format ``fmt``) for generation and scoring.

    ``base_dir`` is a LoRA adapter's base (default: the one its config records). ``threads``
    caps CPU threads (torch's global setting for hf/peft-lora; intra-op threads for ct2).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown model format '{fmt}'; expected one of {', '.join(FORMATS)}.")
    if not path.is_dir():
        raise NotFoundError(f"Model directory {path} does not exist.")
    if fmt == "ct2":
        return _open_ct2(path, device, threads)
    from gitops.ml.loading import load_hf, load_peft

    if threads:
        import torch

        torch.set_num_threads(threads)
    if fmt == "hf":
        model, tok = load_hf(path, device)
    else:
        # Merge in memory: the same function as the adapter, and a plain model generates faster.
        peft_model, tok = load_peft(path, base_dir, device)
        model = peft_model.merge_and_unload().eval()
    return HFBackend(model, tok, path, fmt)


def _open_ct2(path: Path, device: str, threads: int | None) -> CT2Backend:
    from gitops.ml.loading import load_tokenizer

    if not (path / "model.bin").is_file():
        raise NotFoundError(f"{path} has no model.bin; it is not a CTranslate2 model.")
    if not (path / "tokenizer_config.json").is_file():
        raise NotFoundError(f"{path} has no tokenizer files; convert it with gitops so they are "
                            "copied next to the model.")
    try:
        import ctranslate2

        generator = ctranslate2.Generator(str(path), device=device, intra_threads=threads or 0)
    except (RuntimeError, ValueError) as exc:
        raise EvalError(f"CTranslate2 cannot open {path} on {device}: {exc}") from exc
    return CT2Backend(generator, load_tokenizer(path), path)


def ct2_quantization(path: Path) -> str | None:
    """The quantization a gitops-converted ct2 directory was written with, if recorded."""
    from gitops.ml.loading import CT2_META_FILE as META_FILE

    meta = Path(path) / META_FILE
    if meta.is_file():
        return json.loads(meta.read_text()).get("quantization")
    return None


def _sample(logits, sampling: Sampling, rng) -> int:
    """One token from ``softmax(logits / temperature)`` cut to the nucleus ``top_p``."""
    import numpy as np

    z = logits / sampling.temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    keep = int(np.searchsorted(np.cumsum(p[order]), sampling.top_p)) + 1  # the token crossing top_p too
    chosen = order[:keep]
    return int(rng.choice(chosen, p=p[chosen] / p[chosen].sum()))
