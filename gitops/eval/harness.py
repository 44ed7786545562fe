"""Measure one opened model (a :class:`gitops.ml.backends.Backend`) on texts and prompts.

Pure measurement, no registry: :func:`measure` takes the holdout texts and the prompts directly,
so it can be tested and benchmarked without a repository. ``gitops.eval.pipeline`` feeds it the data set
and turns the numbers into the results document.

What each metric means (also in docs/eval.md):

- ``loss``: mean token negative log-likelihood in nats over every scored text, ``sum(nll) /
  sum(tokens)`` (a long review weighs more than a short one, like a training loss does);
  ``perplexity``: ``exp(loss)``, null when it overflows.
- ``latency_p50_ms`` / ``latency_p95_ms``: per-request latency, one prompt at a time (batch size
  1), greedy, up to ``max_new_tokens`` new tokens; the wall time of one complete generation, what a
  single user of the serving endpoint waits. One untimed warm-up request goes first, so lazy
  initialisation is not counted.
- ``tokens_per_s``: generated tokens per second of wall time in batched generation (``batch_size``
  prompts at once, left-padded for transformers), over the throughput prompts; what a busy
  endpoint sustains.
- ``size_bytes``: bytes of the version's weights directory (an adapter's own files, not its base).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitops.errors import EvalError

if TYPE_CHECKING:
    from gitops.ml.backends import Backend

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances so a CLI can draw a bar."""

PROMPT_WORDS = 6          # a sample prompt is the first 6 words of a holdout row
MIN_LATENCY_PROMPTS = 8   # p95 over fewer requests than this would just be the maximum
MAX_THROUGHPUT_PROMPTS = 64


@dataclass(frozen=True)
class Prompt:
    """A prompt cut from a holdout row, and the rest of that row (what a human wrote next)."""

    text: str
    reference: str


@dataclass(frozen=True)
class MeasureConfig:
    """The fixed generation and scoring settings; candidate and baseline use the same one."""

    max_new_tokens: int = 16
    batch_size: int = 16
    greedy: bool = True
    samples: int = 8
    chat: bool = False  # texts and prompts are chat-formatted already (no special tokens are added)


@dataclass
class Measurement:
    """What :func:`measure` found: metric name -> value (None = not finite), and the completions
    of the first ``samples`` prompts, in order."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    completions: list[str] = field(default_factory=list)
    rows: int = 0
    tokens: int = 0


def make_prompts(texts: list[str], words: int = PROMPT_WORDS) -> list[Prompt]:
    """Cut each text after its first ``words`` words; texts with nothing left to complete are
    skipped. The reference keeps the original spacing, so ``prompt + reference == text``."""
    prompts = []
    for text in texts:
        # The end of the words-th word; the reference starts at the whitespace after it.
        match = re.match(rf"\s*(?:\S+\s+){{{words - 1}}}\S+", text)
        if match and text[match.end():].strip():
            prompts.append(Prompt(text[:match.end()], text[match.end():]))
    return prompts


def measure(backend: Backend, texts: list[str], prompts: list[Prompt], config: MeasureConfig, *,
            weights_dir: Path | None = None, progress: Progress | None = None) -> Measurement:
    """Score ``texts`` (loss, perplexity), time generation on ``prompts`` (latency, throughput) and
    return the completions of the first ``config.samples`` prompts."""
    if not texts:
        raise EvalError("there are no texts to score; the split is empty")
    if not prompts:
        raise EvalError("no text is long enough to cut a prompt from; evaluate on more rows")
    out = Measurement()
    nll, out.tokens = score_texts(backend, texts, config.batch_size, progress, chat=config.chat)
    out.rows = len(texts)
    out.metrics.update(loss_metrics(nll, out.tokens))
    lat_prompts = prompts[:max(config.samples, MIN_LATENCY_PROMPTS)]
    seconds, completions = time_requests(backend, [p.text for p in lat_prompts], config, progress)
    out.metrics["latency_p50_ms"] = percentile(seconds, 50) * 1000
    out.metrics["latency_p95_ms"] = percentile(seconds, 95) * 1000
    out.completions = completions[:config.samples]
    tp_prompts = [p.text for p in prompts[:MAX_THROUGHPUT_PROMPTS]]
    out.metrics["tokens_per_s"] = throughput(backend, tp_prompts, config, progress)
    if weights_dir is not None:
        out.metrics["size_bytes"] = float(dir_size(weights_dir))
    return out


def score_texts(backend: Backend, texts: list[str], batch_size: int,
                progress: Progress | None = None, *, chat: bool = False) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and token count over all ``texts``, in batches."""
    nll, tokens = 0.0, 0
    for start in range(0, len(texts), batch_size):
        for total, count in backend.score(texts[start:start + batch_size], batch_size=batch_size, chat=chat):
            nll, tokens = nll + total, tokens + count
        _tick(progress, "loss", min(start + batch_size, len(texts)), len(texts))
    return nll, tokens


def loss_metrics(nll: float, tokens: int) -> dict[str, float | None]:
    """``loss`` = nll / tokens and ``perplexity`` = exp(loss); None where not finite."""
    if tokens <= 0:
        raise EvalError("no tokens were scored; the texts are empty")
    loss = nll / tokens
    if not math.isfinite(loss):
        return {"loss": None, "perplexity": None}
    try:
        ppl: float | None = math.exp(loss)
    except OverflowError:
        ppl = None  # a diverged model: measured, no finite value
    return {"loss": loss, "perplexity": ppl}


def time_requests(backend: Backend, prompts: list[str], config: MeasureConfig,
                  progress: Progress | None = None) -> tuple[list[float], list[str]]:
    """Generate for each prompt alone (batch size 1): per-request seconds and completions."""
    backend.generate(prompts[:1], max_new_tokens=config.max_new_tokens, batch_size=1,
                     greedy=config.greedy, chat=config.chat)  # warm-up, untimed
    seconds, texts = [], []
    for i, prompt in enumerate(prompts):
        [gen] = backend.generate([prompt], max_new_tokens=config.max_new_tokens, batch_size=1,
                                 greedy=config.greedy, chat=config.chat)
        seconds.append(gen.seconds)
        texts.append(gen.text)
        _tick(progress, "latency", i + 1, len(prompts))
    return seconds, texts


def throughput(backend: Backend, prompts: list[str], config: MeasureConfig,
               progress: Progress | None = None) -> float | None:
    """Generated tokens per second over batched generation of ``prompts``."""
    tokens, seconds = 0, 0.0
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start:start + config.batch_size]
        gens = backend.generate(batch, max_new_tokens=config.max_new_tokens,
                                batch_size=config.batch_size, greedy=config.greedy, chat=config.chat)
        tokens += sum(g.new_tokens for g in gens)
        seconds += gens[0].seconds  # every Generation of one batch carries that batch's time
        _tick(progress, "throughput", start + len(batch), len(prompts))
    return tokens / seconds if seconds > 0 else None


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise EvalError("no latency measurements were taken")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def dir_size(path: Path) -> int:
    """Bytes of every regular file under ``path`` (links not followed)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
