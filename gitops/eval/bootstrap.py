"""Paired bootstrap confidence intervals for the difference of two models measured on the same units.

Both models are measured on the same holdout rows, the same latency prompts and the same throughput
batches, in the same order, so unit ``i`` of one is paired with unit ``i`` of the other. One
resample draws ``n`` unit indices with replacement and computes the statistic of *both* models on
those same units; the difference of the two is one draw of the delta. The interval is the central
``confidence`` part of ``resamples`` such draws (percentile bootstrap). Pairing removes what the
units themselves contribute (a hard row is hard for both models), so the interval measures the
models' difference, not the rows' spread.

Fixed and recorded: :data:`RESAMPLES` draws, seed :data:`SEED`, :data:`CONFIDENCE`. The same seed
gives the same index draws for every metric over ``n`` units, so a document can be recomputed
exactly. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
MIN_UNITS = 2          # one unit resampled is always itself: no spread, no interval
_CELLS = 2_000_000     # index cells drawn per chunk (16 MB of int64), whatever the number of units


def ratio_interval(cand: tuple[Sequence[float], Sequence[float]], ref: tuple[Sequence[float], Sequence[float]], *,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None, resamples: int = RESAMPLES,
                   seed: int = SEED, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Interval of ``f(sum(num_c)/sum(den_c)) - f(sum(num_r)/sum(den_r))`` over paired units.

    ``cand`` and ``ref`` are (numerators, denominators) per unit: (NLL, tokens) per row gives the
    loss, and with ``transform=numpy.exp`` the perplexity; (tokens, seconds) per batch gives tokens/s.
    None when there are too few units or a draw is not finite."""
    import numpy as np

    arrays = [np.asarray(a, dtype=np.float64) for a in (*cand, *ref)]
    f = transform or (lambda x: x)

    def stat(idx: np.ndarray) -> np.ndarray:
        nc, dc, nr, dr = (a[idx].sum(axis=1) for a in arrays)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return f(nc / dc) - f(nr / dr)

    return _interval(stat, _paired_length(arrays), resamples, seed, confidence)


def percentile_interval(cand: list[float], ref: list[float], pct: float, *, scale: float = 1.0,
                        resamples: int = RESAMPLES, seed: int = SEED,
                        confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Interval of ``percentile(cand, pct) - percentile(ref, pct)`` (times ``scale``) over paired
    units, e.g. per-request latencies; percentiles interpolate linearly, as the harness does."""
    import numpy as np

    c, r = (np.asarray(a, dtype=np.float64) * scale for a in (cand, ref))

    def stat(idx: np.ndarray) -> np.ndarray:
        return np.percentile(c[idx], pct, axis=1) - np.percentile(r[idx], pct, axis=1)

    return _interval(stat, _paired_length([c, r]), resamples, seed, confidence)


def counts_interval(stat: Callable[[np.ndarray], np.ndarray], n: int, *, resamples: int = RESAMPLES,
                    seed: int = SEED, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Interval of a statistic computed from draw counts: ``stat`` gets a (draws, n) matrix whose
    row ``d`` says how many times draw ``d`` took each unit, and returns one value per draw. The
    draws are :func:`ratio_interval`'s (same seed, same indices), so statistics that are no ratio
    of sums (macro-F1, calibration error) pair with the others. None when ``n`` is too small."""
    import numpy as np

    def from_indices(idx: np.ndarray) -> np.ndarray:
        draws = idx.shape[0]
        flat = (np.arange(draws)[:, None] * n + idx).ravel()
        return stat(np.bincount(flat, minlength=draws * n).reshape(draws, n).astype(np.float64))

    return _interval(from_indices, n, resamples, seed, confidence)


def _paired_length(arrays: list[np.ndarray]) -> int:
    """The number of paired units, or 0 when the arrays do not pair up."""
    lengths = {len(a) for a in arrays}
    return lengths.pop() if len(lengths) == 1 else 0


def _interval(stat: Callable[[np.ndarray], np.ndarray], n: int, resamples: int, seed: int,
              confidence: float) -> tuple[float, float] | None:
    import numpy as np

    if n < MIN_UNITS or resamples < 1 or not 0 < confidence < 1:
        return None
    draws = np.concatenate([stat(idx) for idx in _indices(n, resamples, seed)])
    if not np.all(np.isfinite(draws)):
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``resamples`` rows of ``n`` indices drawn with replacement, in chunks of bounded size."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per = max(1, _CELLS // n)
    for start in range(0, resamples, per):
        yield rng.integers(0, n, size=(min(per, resamples - start), n))
