"""Reading and appending ``registry/datasets/<name>.yaml`` at a cost that does not grow with its versions.

The file gains one version per ingest, so after 1,000 ingests it holds 1,000 versions. Parsing it with
line numbers costs ~0.4 ms per version (0.4 s at 1,000) and rewriting it is as slow, which would make
the 1,000th ingest much slower than the 10th. So:

* a new version is appended as text when ``versions:`` is the file's last block (the layout this
  module writes; known from the cached parse, so not re-scanned);
* a parse is remembered, keyed by the sha256 of the exact text it came from (hashing costs ~1 ms
  per MB): in memory for this process, and in ``.git/gitops/datasets/<name>.cache`` for the next.
  That file is append-only, like the YAML: one JSON line with a full parse, then one line per
  appended version naming the digest of the text before and after the append. So an ingest writes
  one short line instead of re-serializing every version, and a load replays the chain up to the
  line whose digest matches the text (a rolled-back ingest simply stops the replay one line early).
  Same text, same result, so the cache can never disagree with a fresh parse (a test checks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.adapters import git
from gitops.errors import DataError, NotFoundError
from gitops.registry import refs, store
from gitops.registry.schema import Dataset, DatasetVersion

_MEMO: dict[tuple[str, str], tuple[str, Dataset, bool]] = {}  # digest, parse, versions-is-last-block
_TOP_LEVEL = re.compile(r"^[^\s#][^\n]*", re.MULTILINE)
_FORMAT = 1  # bump when the cache lines change meaning: an old file then simply misses


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest_of(root: Path, name: str) -> str | None:
    """The digest of the text the last load/append of ``name`` in this process saw (None if none)."""
    memo = _MEMO.get((str(root.resolve()), name))
    return memo[0] if memo else None


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
    return _copy(_parsed(root, name, text)[0])


def _parsed(root: Path, name: str, text: str, digest: str | None = None) -> tuple[Dataset, bool]:
    """The parse of ``text`` (whose sha256 is ``digest``) and whether ``versions:`` is its last block,
    from the cache if possible."""
    digest = digest or _digest(text)
    cached = _cache_get(root, name, digest)
    if cached is None:
        rel = store.dataset_file(name)
        registry = store.parse_texts({rel: text})
        registry.raise_problems()
        cached = (registry.datasets[name], _versions_last(text))
        _cache_snapshot(root, cached[0], digest, cached[1])
    return cached


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
    from gitops.data.journal import state_path

    return state_path(root, "datasets", f"{name}.cache")


def _cache_get(root: Path, name: str, digest: str) -> tuple[Dataset, bool] | None:
    key = (str(root.resolve()), name)
    memo = _MEMO.get(key)
    if memo and memo[0] == digest:
        return memo[1], memo[2]
    path = _cache_path(root, name)
    try:
        found = _replay(path.read_bytes(), digest)
    except Exception:  # no cache, or one from another version of the code: parse instead
        return None
    if found is None:
        return None
    dataset, last, end = found
    if end < path.stat().st_size:  # lines past the match belong to a rolled-back ingest: drop them
        os.truncate(path, end)
    _MEMO[key] = (digest, dataset, last)
    return dataset, last


def _replay(data: bytes, digest: str) -> tuple[Dataset, bool, int] | None:
    """The data set after the cache line whose digest is ``digest``, and the byte offset past that line."""
    from gitops.registry.cache import dataset_from_dict

    lines = data.split(b"\n")
    head = json.loads(lines[0])
    if head.get("format") != _FORMAT:
        return None
    at, dataset = head["digest"], dataset_from_dict(head["dataset"])
    end = offset = len(lines[0]) + 1
    match = (dataset.versions.copy(), head["last"], end) if at == digest else None
    for line in lines[1:]:
        offset += len(line) + 1
        try:
            entry = json.loads(line)
        except ValueError:  # a torn last line (killed mid-append)
            break
        if entry.get("prev") != at:
            break
        version = DatasetVersion(**entry["version"])
        dataset.versions[version.id] = version
        at = entry["digest"]
        if at == digest:
            match = (dataset.versions.copy(), True, offset)
    if match is None:
        return None
    return dataclasses.replace(dataset, versions=match[0]), bool(match[1]), match[2]


def _cache_snapshot(root: Path, dataset: Dataset, digest: str, versions_last: bool) -> None:
    """Remember a full parse (memo, and a fresh cache file replacing the old one atomically)."""
    dataset = _copy(dataset)
    _MEMO[(str(root.resolve()), dataset.name)] = (digest, dataset, versions_last)
    head = {"format": _FORMAT, "digest": digest, "last": versions_last, "dataset": dataclasses.asdict(dataset)}
    path = _cache_path(root, dataset.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(head) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _cache_append(root: Path, dataset: Dataset, version: DatasetVersion, prev: str, digest: str) -> None:
    """Remember ``version`` appended to the text ``prev`` (one line; cost independent of the data set)."""
    _MEMO[(str(root.resolve()), dataset.name)] = (digest, _copy(dataset), True)
    entry: dict[str, Any] = {"prev": prev, "digest": digest, "version": dataclasses.asdict(version)}
    path = _cache_path(root, dataset.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def _versions_last(text: str) -> bool:
    """Whether the last top-level line of the YAML text is ``versions:`` (computed once per parse)."""
    top = _TOP_LEVEL.findall(text)
    return bool(top) and top[-1].rstrip() == "versions:"


def append_version(root: Path, dataset: Dataset, version: DatasetVersion) -> str:
    """Add ``version`` (already in ``dataset.versions``) to the file and refresh the parse cache.

    Appended as text when ``versions:`` ends the file, else the whole file is rewritten (once: the
    rewrite puts ``versions:`` last). Atomic either way; the ingest journal covers the rest.
    """
    rel = store.dataset_file(dataset.name)
    path = root / rel
    text = path.read_text(encoding="utf-8")
    prev = _digest(text)
    if _parsed(root, dataset.name, text, prev)[1]:
        entry = yamlio.dumps({version.id: version.to_dict()})
        text = text.rstrip("\n") + "\n" + "".join(f"  {line}\n" if line else "\n" for line in entry.splitlines())
        yamlio.write_atomic(path, text)
        _cache_append(root, dataset, version, prev, _digest(text))
    else:
        store.write_dataset(root, dataset)
        _cache_snapshot(root, dataset, _digest(path.read_text(encoding="utf-8")), True)
    return rel
