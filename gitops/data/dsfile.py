"""Reading and appending ``registry/datasets/<name>.yaml`` at a cost that does not grow with its versions.

The file gains one version per ingest, so after 1,000 ingests it holds 1,000 versions. Parsing it with
line numbers costs ~0.4 ms per version (0.4 s at 1,000) and rewriting it is as slow, which would make
the 1,000th ingest much slower than the 10th. So:

* a new version is appended as text when ``versions:`` is the file's last block (the layout this
  module writes), found by looking only at the file's tail;
* a parse is remembered, keyed by the sha256 of the exact text it came from (hashing costs ~1 ms
  per MB): in memory for this process, and in ``.git/gitops/datasets/<name>.pickle`` for the next.
  Same text, same result, so the cache can never disagree with a fresh parse (a test checks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from pathlib import Path

from gitops import yamlio
from gitops.adapters import git
from gitops.errors import DataError, NotFoundError
from gitops.registry import refs, store
from gitops.registry.schema import Dataset, DatasetVersion

_MEMO: dict[tuple[str, str], tuple[str, Dataset]] = {}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _copy(dataset: Dataset) -> Dataset:
    """A copy callers may change (dicts copied; version records are never mutated in place)."""
    return dataclasses.replace(dataset, columns=dict(dataset.columns), key=list(dataset.key),
                               splits=dict(dataset.splits), versions=dict(dataset.versions))


def load(root: Path, name: str) -> Dataset:
    """One data set from the work tree, fully validated (only its own file is read)."""
    if problem := refs.name_problem(name, "data set"):
        raise DataError(problem)
    rel = store.dataset_file(name)
    if not (root / rel).is_file():
        store.Registry().dataset(name)  # raises NotFoundError with the usual hint
    text = (root / rel).read_text(encoding="utf-8")
    digest = _digest(text)
    cached = _cache_get(root, name, digest)
    if cached is None:
        registry = store.parse_texts({rel: text})
        registry.raise_problems()
        cached = registry.datasets[name]
        _cache_put(root, cached, digest)
    return _copy(cached)


def at_rev(root: Path, name: str, rev: str) -> Dataset:
    """The data set as committed at git ``rev`` (only its own file is read and validated)."""
    if problem := refs.name_problem(name, "data set"):
        raise DataError(problem)
    commit, rel = git.resolve(root, rev), store.dataset_file(name)
    text = git.read_blobs(root, [f"{commit}:{rel}"])[f"{commit}:{rel}"]
    if text is None:
        raise NotFoundError(f"data set '{name}' does not exist at {rev} ({rel} is not in that commit)")
    registry = store.parse_texts({rel: text})
    registry.raise_problems()
    return registry.datasets[name]


def _cache_path(root: Path, name: str) -> Path:
    return root / ".git" / "gitops" / "datasets" / f"{name}.pickle"


def _cache_get(root: Path, name: str, digest: str) -> Dataset | None:
    memo = _MEMO.get((str(root.resolve()), name))
    if memo and memo[0] == digest:
        return memo[1]
    try:
        stored, dataset = pickle.loads(_cache_path(root, name).read_bytes())
    except Exception:  # no cache, or one from another version of the code: parse instead
        return None
    if stored != digest or not isinstance(dataset, Dataset):
        return None
    _MEMO[(str(root.resolve()), name)] = (digest, dataset)
    return dataset


def _cache_put(root: Path, dataset: Dataset, digest: str) -> None:
    dataset = _copy(dataset)
    _MEMO[(str(root.resolve()), dataset.name)] = (digest, dataset)
    if not (root / ".git").is_dir():
        return  # a linked worktree or submodule (.git is a file): memory only
    path = _cache_path(root, dataset.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps((digest, dataset)))
    os.replace(tmp, path)


def _versions_last(text: str) -> bool:
    """Whether the last top-level key of the YAML text is ``versions:`` (scans the tail only)."""
    end = len(text)
    while end > 0:
        start = text.rfind("\n", 0, end - 1) + 1
        line = text[start:end].rstrip("\n")
        if line and not line[0].isspace() and not line.startswith("#"):
            return line.rstrip() == "versions:"
        end = start
    return False


def append_version(root: Path, dataset: Dataset, version: DatasetVersion) -> str:
    """Add ``version`` (already in ``dataset.versions``) to the file and refresh the parse cache.

    Appended as text when ``versions:`` ends the file, else the whole file is rewritten (once: the
    rewrite puts ``versions:`` last). Atomic either way; the ingest journal covers the rest.
    """
    rel = store.dataset_file(dataset.name)
    path = root / rel
    text = path.read_text(encoding="utf-8")
    if _versions_last(text):
        entry = yamlio.dumps({version.id: version.to_dict()})
        text = text.rstrip("\n") + "\n" + "".join(f"  {line}\n" if line else "\n" for line in entry.splitlines())
        yamlio.write_atomic(path, text)
    else:
        store.write_dataset(root, dataset)
        text = path.read_text(encoding="utf-8")
    _cache_put(root, dataset, _digest(text))
    return rel
