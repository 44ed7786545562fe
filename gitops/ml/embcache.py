"""The machine-local cache of a frozen base's embeddings of a data set's rows (classification heads).

Embedding is the expensive part of training a head (a forward pass of the base per row); the head
itself trains in seconds. So the vectors are cached, keyed as the issue asks by what decides them:

- a **family** (:class:`EmbedKey`): the base's md5, the md5 of the task's input template, the
  pooling, the layer and the token limit. Its directory is ``<cache>/embeddings/emb-<md5 of the key>/``;
- an **entry** in it per data set version (``<name>-<version md5>``), holding the vectors of that
  version's rows (``vectors.npy``, float32) and the md5 of each row's rendered input text
  (``texts.json``), with a manifest written last (``gitops-embeddings.json``: the key, the data set
  version, every file's md5).

Entries are built once under a lock in a temporary directory and renamed into place
(:func:`gitops.core.localcache.build_once`), and every use re-hashes the files against the
manifest: an entry that fails is rebuilt, never used. An entry grows incrementally: when a data
set version is asked for the first time, the vectors of every row whose rendered text an earlier
entry of the same family already holds (the rows of the batches ingested before) are copied from
there, and only the new rows run through the base. Vectors are looked up by the md5 of the
rendered text, which with the family key is exactly what the vector is a function of.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gitops.adapters.dvcdir import file_md5
from gitops.core.localcache import build_once, cache_root, manifest_matches

MARKER = "gitops-embeddings.json"
VECTORS, TEXTS = "vectors.npy", "texts.json"
ROOT = "embeddings"
EMBEDDED = {"rows": 0}  # rows this process ran through a base (cache misses); tests read it
MAX_SIBLINGS = 16  # earlier entries of a family searched for vectors to reuse, newest first


@dataclass(frozen=True)
class EmbedKey:
    """What a row's vector depends on besides its text."""

    base_md5: str
    template_md5: str
    pooling: str
    layer: int
    max_length: int

    def family(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return "emb-" + hashlib.md5(canonical.encode("utf-8")).hexdigest()  # md5: a name


@dataclass
class Embeddings:
    """The vectors of the rows asked for, in their order, and what it took to get them."""

    vectors: Any  # numpy float32 (rows, dim)
    embedded: int  # rows run through the base by this call
    reused: int  # rows whose vectors came from the cache
    seconds: float  # time spent embedding (0 when every row was cached)
    entry: Path


def text_md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # md5: a content key


def template_md5(template: str) -> str:
    return text_md5(template)


def embeddings(key: EmbedKey, dataset: str, texts: list[str], embed: Callable[[list[str]], Any], *,
               cache_dir: Path | None = None) -> Embeddings:
    """The vectors of ``texts`` (the rendered rows of data set version ``dataset``, a name such as
    ``reviews-<md5>``), from the cache entry (``key``, ``dataset``); rows it lacks are taken from
    earlier entries of the family when they hold the same text, and the rest run through
    ``embed(texts) -> array``. The entry is written (or replaced, grown) under its lock."""
    import numpy as np

    root = cache_root(cache_dir) / ROOT / key.family()
    wanted = [text_md5(t) for t in texts]
    needed = set(wanted)
    stats: dict[str, Any] = {"embedded": 0, "seconds": 0.0}

    def build(tmp: Path) -> None:
        known = _known_vectors(root, key, needed)
        missing = sorted({h: t for h, t in zip(wanted, texts, strict=True) if h not in known}.items())
        if missing:
            t0 = time.perf_counter()
            made = np.asarray(embed([t for _, t in missing]), dtype=np.float32)
            stats["seconds"] = time.perf_counter() - t0
            stats["embedded"] = len(missing)
            EMBEDDED["rows"] += len(missing)
            known.update({h: made[i] for i, (h, _) in enumerate(missing)})
        order = sorted(needed)
        np.save(tmp / VECTORS, np.stack([known[h] for h in order]).astype(np.float32), allow_pickle=False)
        (tmp / TEXTS).write_text(json.dumps(order), encoding="utf-8")
        files = {name: file_md5(tmp / name) for name in (VECTORS, TEXTS)}
        manifest = {"key": asdict(key), "dataset": dataset, "rows": len(order), "files": files}
        (tmp / MARKER).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    build_once(root, dataset, lambda entry: _holds(entry, key, needed), build)
    entry = root / dataset
    table = _read(entry)
    assert table is not None  # just built or verified
    hashes, vectors = table
    index = {h: i for i, h in enumerate(hashes)}
    out = vectors[[index[h] for h in wanted]] if wanted else np.zeros((0, vectors.shape[1]), np.float32)
    return Embeddings(out, stats["embedded"], len(texts) - stats["embedded"], stats["seconds"], entry)


def _manifest(entry: Path, key: EmbedKey) -> dict[str, Any] | None:
    """The entry's manifest when it is finished, for ``key``, and its files match it; else None."""
    try:
        manifest = json.loads((entry / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != asdict(key):
        return None
    return manifest if manifest_matches(entry, MARKER, manifest.get("files")) else None


def _holds(entry: Path, key: EmbedKey, needed: set[str]) -> bool:
    """A verified entry holding a vector for every text md5 in ``needed``."""
    if _manifest(entry, key) is None:
        return False
    table = _read(entry)
    return table is not None and needed <= set(table[0])


def _read(entry: Path) -> tuple[list[str], Any] | None:
    import numpy as np

    try:
        hashes = json.loads((entry / TEXTS).read_text(encoding="utf-8"))
        vectors = np.load(entry / VECTORS, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if not isinstance(hashes, list) or vectors.ndim != 2 or len(hashes) != vectors.shape[0]:
        return None
    return hashes, vectors


def _known_vectors(root: Path, key: EmbedKey, needed: set[str]) -> dict[str, Any]:
    """Vectors for texts in ``needed`` that verified entries of the family already hold (the entry
    being replaced included: it may hold most of them), newest entries first."""
    found: dict[str, Any] = {}
    if not root.is_dir():
        return found
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_SIBLINGS]
    for entry in entries:
        if len(found) == len(needed):
            break
        if _manifest(entry, key) is None:
            continue
        table = _read(entry)
        if table is None:
            continue
        for i, h in enumerate(table[0]):
            if h in needed and h not in found:
                found[h] = table[1][i]
    return found
