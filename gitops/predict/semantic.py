"""Semantic retrieval: a sentence-transformers model from a local path, exact cosine search in numpy.

The train rows are embedded once (normalised, so a dot product is the cosine) and cached with the
index (:mod:`gitops.predict.retrieval`) under the (data set md5, embedder md5) key; queries are
embedded per batch and ranked against every row (exact search: a 10,000-row set is one small
matrix product). Ties keep the rows' order, so the ranking is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitops.core.promptspec import Retrieval
from gitops.errors import ConfigError
from gitops.registry.prompt import pinned_embedder

EMBEDDINGS = "embeddings.npy"
BATCH = 64


def embedder_dir(root: Path, retrieval: Retrieval) -> tuple[Path, str]:
    """The embedder's directory (local, or a hub snapshot at the pinned commit) and its md5, checked
    against the md5 pinned when the prompt version was added."""
    pin = {"embedder": retrieval.embedder, "revision": retrieval.revision, "embedder_md5": retrieval.embedder_md5}
    return pinned_embedder(root, pin, "prompt config")


def _model(model_dir: Path):  # untyped: a SentenceTransformer
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever a broken model directory raises, say it in one sentence
        raise ConfigError(f"retrieval.embedder {model_dir} is not a loadable sentence-transformers model "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def _encode(model, texts: list[str]):  # untyped: numpy in, numpy out
    return model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)


def build(model_dir: Path, texts: list[str], into: Path, *, reuse: Path | None = None) -> int:
    """Embed ``texts`` into ``into``; the vectors in ``reuse`` (an entry whose rows are the first
    rows of ``texts``) are kept and only the rest embedded. Returns how many were reused."""
    import numpy as np

    old = np.load(reuse / EMBEDDINGS) if reuse is not None else np.zeros((0, 0), dtype=np.float32)
    rest = texts[len(old):]
    parts = ([old] if len(old) else []) + ([_encode(_model(model_dir), rest).astype(np.float32)] if rest else [])
    np.save(into / EMBEDDINGS, np.concatenate(parts) if len(parts) > 1 else parts[0])
    return len(old)


def load(model_dir: Path, entry: Path) -> Callable[[list[str], int], list[list[int]]]:
    import numpy as np

    vectors = np.load(entry / EMBEDDINGS)
    model = _model(model_dir)

    def search(queries: list[str], k: int) -> list[list[int]]:
        scores = _encode(model, queries).astype(np.float32) @ vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[int(i) for i in row] for row in order]

    return search
