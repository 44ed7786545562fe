"""Few-shot examples for a prompt version: an index over the TRAIN split of one data set version.

The index is built only from rows whose split is ``train`` (never valid or test, so a holdout row can
never be shown as an example of itself), and a query row's own key is excluded too, so predicting
over the train split does not leak a row's label into its prompt.

- ``random``: ``k`` rows drawn by a generator seeded with (seed, the query row's key, or its
  rendered text when it has no key columns, as a served request has not): the same query gets the
  same examples on every run and machine, and different queries different ones.
- ``bm25``: lexical search with the ``bm25s`` package (English stop words, no model needed: the
  offline default).
- ``semantic``: a sentence-transformers model from a local path embeds the rows; exact cosine
  search in numpy (:mod:`gitops.predict.semantic`).

Built indexes are cached under the git directory by (data set md5, embedder md5, md5 of the input
template that renders a row into the text indexed), so a second run over the same data set version,
embedder and template loads instead of building, and a model whose task renders rows differently
builds its own; a semantic index for a newer version reuses the vectors of an older one (same
embedder and template) and embeds only the rows that arrived since.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core.promptspec import Retrieval
from gitops.core.workspace import Workspace
from gitops.data import batches, keys
from gitops.errors import ConfigError

BM25_STOPWORDS = "en"
KEYS_FILE = "keys.json"  # the indexed rows' key hashes, in order: what an incremental build checks


@dataclass
class Retriever:
    """Examples for a query row: ``retrieve(row)`` returns up to ``k`` train rows, best first."""

    kind: str
    k: int
    rows: list[dict[str, Any]]
    key_of: Callable[[dict[str, Any]], str]
    text_of: Callable[[dict[str, Any]], str]
    seed: int = 0
    cached: bool = False   # the index was loaded from the cache, not built
    reused: int = 0        # rows whose vectors came from an earlier version's entry (semantic)
    cache_dir: Path | None = None
    template_md5: str = ""  # of the input template rows are rendered by: part of the cache key
    _search: Callable[[list[str], int], list[list[int]]] | None = field(default=None, repr=False)

    def retrieve(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        return self.retrieve_many([row])[0]

    def retrieve_many(self, queries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Examples for each query row (a batch at once: one search call for bm25 and semantic)."""
        if self.kind == "none" or not self.k:
            return [[] for _ in queries]
        own = [self.key_of(q) for q in queries]
        if self.kind == "random":  # a row without the key columns (a served request) is seeded by its text
            return [self._random(key or "\0text\0" + self.text_of(q)) for key, q in zip(own, queries, strict=True)]
        assert self._search is not None
        hits = self._search([self.text_of(q) for q in queries], min(self.k + 1, len(self.rows)))
        return [[self.rows[i] for i in found if self.key_of(self.rows[i]) != key][:self.k]
                for found, key in zip(hits, own, strict=True)]

    def _random(self, key: str) -> list[dict[str, Any]]:
        rng = random.Random(hashlib.sha256(f"{self.seed}\0{key}".encode()).digest())
        picked = rng.sample(range(len(self.rows)), min(self.k + 1, len(self.rows)))
        return [self.rows[i] for i in picked if self.key_of(self.rows[i]) != key][:self.k]


def build_retriever(ws: Workspace, dataset_ref: str | None, retrieval: Retrieval,
                    text_of: Callable[[dict[str, Any]], str], *, template: str | None = None) -> Retriever:
    """The retriever a prompt version's ``retrieval`` block asks for, over the train split of
    ``dataset_ref``; ``text_of`` is how a row reads as a query and as a document, ``template`` what
    identifies it in the cache key (default: the input template of the task ``text_of`` renders by)."""
    if retrieval.type == "none" or not retrieval.k:
        return Retriever("none", 0, [], str, text_of)
    if dataset_ref is None:
        raise ConfigError(f"retrieval '{retrieval.type}' needs a data set to draw examples from")
    dataset, _ = batches.resolve(ws, dataset_ref)
    rows = batches.read_rows(ws, dataset_ref, "train")
    if retrieval.k > len(rows):
        raise ConfigError(f"retrieval.k {retrieval.k} is larger than the train split of {dataset_ref} "
                          f"({len(rows)} rows)")
    def key_of(row: dict[str, Any]) -> str:  # a query row from another data set may lack the key columns
        return keys.key_hash(row, dataset.key) if all(k in row for k in dataset.key) else ""

    out = Retriever(retrieval.type, retrieval.k, rows, key_of, text_of, seed=retrieval.seed)
    if retrieval.type == "random":
        return out
    data_md5 = batches.dataset_md5(ws, dataset_ref)
    out.template_md5 = template_md5(text_of if template is None else template)
    texts = lambda: [text_of(r) for r in rows]  # noqa: E731 - only a build needs them (a cached index does not)
    if retrieval.type == "bm25":
        return _with_index(ws, out, data_md5, _bm25_id(), lambda d: _bm25_build(texts(), d), _bm25_load)
    from gitops.predict import semantic

    model_dir, embedder_md5 = semantic.embedder_dir(ws.root, retrieval)

    def build(into: Path) -> None:
        # a data set version grows by batches: the vectors of an earlier version whose train rows are
        # a prefix of these are reused, and only the rows that arrived since are embedded
        reuse = _prefix_entry(ws, "semantic", f"{embedder_md5}-{out.template_md5}", [out.key_of(r) for r in rows])
        out.reused = semantic.build(model_dir, texts(), into, reuse=reuse)

    return _with_index(ws, out, data_md5, embedder_md5, build, lambda d: semantic.load(model_dir, d))


def template_md5(template: str | Callable[[dict[str, Any]], str]) -> str:
    """What identifies how rows become indexed text: the input template (or, given a task's
    ``render``, that task's template), md5-hashed."""
    text: object = template
    if not isinstance(template, str):
        owner = getattr(template, "__self__", None)
        text = getattr(owner, "input", None) or getattr(template, "__qualname__", repr(template))
    return hashlib.md5(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _prefix_entry(ws: Workspace, kind: str, suffix: str, row_keys: list[str]) -> Path | None:
    """The finished cache entry of ``kind`` ending in ``suffix`` (embedder and template md5) whose
    rows are the longest prefix of ``row_keys`` (an earlier version of the same data set), or None."""
    best, best_len = None, 0
    for entry in ws.state_path("retrieval").glob(f"{kind}-*-{suffix}"):
        try:
            done = json.loads((entry / "done.json").read_text())
            found = json.loads((entry / KEYS_FILE).read_text())
        except (OSError, ValueError):
            continue
        n = len(found)
        if best_len < n <= len(row_keys) and done.get("rows") == n and found == row_keys[:n]:
            best, best_len = entry, n
    return best


def _with_index(ws: Workspace, out: Retriever, data_md5: str, embedder_md5: str,
                build: Callable[[Path], None], load: Callable[[Path], Callable]) -> Retriever:
    """``out`` with its search loaded from the cache entry for (data set md5, embedder md5, template
    md5), built there first (into a temporary directory, renamed into place: a killed build leaves
    no entry)."""
    entry = ws.state_path("retrieval", f"{out.kind}-{data_md5}-{embedder_md5}-{out.template_md5}")
    out.cached = (entry / "done.json").is_file()
    if not out.cached:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=entry.parent))
        try:
            build(tmp)
            (tmp / KEYS_FILE).write_text(json.dumps([out.key_of(r) for r in out.rows]))
            (tmp / "done.json").write_text(json.dumps({"rows": len(out.rows), "data_md5": data_md5,
                                                       "embedder_md5": embedder_md5,
                                                       "template_md5": out.template_md5}))
            shutil.rmtree(entry, ignore_errors=True)
            tmp.rename(entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out.cache_dir = entry
    out._search = load(entry)
    return out


def _bm25_id() -> str:
    import bm25s

    return hashlib.md5(f"bm25s-{bm25s.__version__}-{BM25_STOPWORDS}".encode()).hexdigest()


def _bm25_tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=BM25_STOPWORDS, return_ids=False, show_progress=False)


def _bm25_build(texts: list[str], into: Path) -> None:
    import bm25s

    index = bm25s.BM25()
    index.index(_bm25_tokens(texts), show_progress=False)
    index.save(str(into))


def _bm25_load(entry: Path) -> Callable[[list[str], int], list[list[int]]]:
    import bm25s

    index = bm25s.BM25.load(str(entry))

    def search(queries: list[str], k: int) -> list[list[int]]:
        found = index.retrieve(_bm25_tokens(queries), k=k, show_progress=False, n_threads=1)
        return [[int(i) for i in row] for row in found.documents]

    return search
