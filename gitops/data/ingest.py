"""``gitops ingest``: validate, dedupe, split and store a batch as a new data set version.

An ingest is: recover any interrupted ingest, validate (and normalise) every row, drop rows whose key
the data set already holds (local key cache, see :mod:`gitops.data.keys`) and duplicates inside the
batch, split (the split a row names in the data set's split column, else the key hash), write one
immutable batch file plus its key shard under ``data/<name>/``, update
``data.dvc`` incrementally (:meth:`gitops.adapters.dvc.Dvc.add_to_dir`), append a version to
``registry/datasets/<name>.yaml`` and commit. The write-ahead journal every committing verb shares
(:mod:`gitops.core.journal`) makes the whole thing all-or-nothing, even under SIGKILL: the next
command rolls a killed ingest back or forward before it does anything else.

The split of a key is decided once, by the first batch that brings it, and never changes: a later
row with a known key is a duplicate and is dropped, even when it names another split (it is counted
in ``split_conflicts`` so the user is told).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import timestamps, yamlio
from gitops.core import layout, plain, refs
from gitops.core.schema import SPLIT_KEY, Dataset, DatasetVersion
from gitops.core.workspace import Workspace
from gitops.data import keys, rows
from gitops.errors import DataError, RepoStateError

Progress = Callable[[str], None]
POINTER = "data.dvc"  # one DVC pointer for all of data/
SPACE_MARGIN = 128 * 1024  # git's objects and index, the journal, DVC's manifest, the sqlite journal
TARGET = "data"


@dataclass
class IngestResult:
    """What an ingest did. ``version`` is None when nothing new was added (or nothing was valid)."""

    dataset: str
    version: str | None
    rows_added: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    split_conflicts: int = 0      # duplicates that named another split than their key has (kept as it was)
    split_named: int = 0          # new rows whose split came from the split column
    invalid: int = 0
    rejects_paths: list[Path] = field(default_factory=list)
    batch: str | None = None
    commit: str | None = None
    pushed: bool = False
    recovered: str | None = None
    message: str = ""

    @property
    def rejects_path(self) -> Path | None:
        return self.rejects_paths[0] if self.rejects_paths else None

    @property
    def total_added(self) -> int:
        return sum(self.rows_added.values())


def ingest(ws: Workspace, files: list[Path], dataset: str, *, skip_invalid: bool = False, push: bool = False,
           delimiter: str | None = None, progress: Progress | None = None) -> IngestResult:
    """Validate, dedupe, split and store ``files`` as one new version of ``dataset`` (see module doc).

    ``delimiter`` (one character, or ``tab``) reads every file that is not JSON Lines or Parquet as
    text with that delimiter (default: by extension, ``.csv`` ``,``, ``.tsv`` tab, ``.psv`` ``|``)."""
    delimiter = rows.parse_delimiter(delimiter) if delimiter is not None else None
    with ws.writing("ingest") as recovered:
        result = _ingest(ws, files, dataset, skip_invalid, push, delimiter, progress or (lambda _msg: None))
        result.recovered = recovered
        return result


def _ingest(ws: Workspace, files: list[Path], dataset: str, skip_invalid: bool, push: bool, delimiter: str | None,
            say: Progress) -> IngestResult:
    ds, stamp = ws.read_dataset(dataset)
    _require_clean(ws, dataset)
    if push:
        ws.check_push()  # before anything: a push that cannot happen should not follow a commit
    paths = [Path(f) for f in files]
    for path in paths:  # every file found, small enough and of a known format before the first is read
        rows.check_file(path, delimiter)
    say(f"validating {len(files)} file(s)")
    checked = rows.check_files(paths, ds, delimiter)
    result = IngestResult(dataset=dataset, version=None, invalid=len(checked.rejects))
    if checked.rejects and not skip_invalid:
        sentence, lines = rows.summary(checked.rejects)
        valid = len(checked.good)
        hint = (f" (use --skip-invalid to keep the {valid} valid row{'s' if valid != 1 else ''})" if valid
                else ": no row is valid")
        raise DataError(f"{sentence}; nothing was ingested{hint}", problems=lines)
    if checked.rejects:
        result.rejects_paths = rows.write_rejects(checked)
    say("checking keys against the data set")
    new, result.duplicates, result.split_conflicts = _dedupe(ws, ds, stamp, checked.good)
    if not new:
        result.message = _nothing_message(ds, checked, result)
        return result
    say(f"storing {len(new)} new rows")
    _store_batch(ws, ds, stamp, new, files, result)
    if push:
        say("pushing data and commit")
        ws.push([POINTER], f"{ds.name} {result.version} was ingested")
        result.pushed = True
    return result


def _require_clean(ws: Workspace, dataset: str) -> None:
    ours = {layout.dataset_file(dataset), POINTER, ".gitignore"}
    dirty = [p for p in ws.git.dirty_paths() if p in ours]
    if dirty:
        raise RepoStateError(f"cannot ingest: {', '.join(dirty)} has uncommitted changes; commit or restore it first")


def _key_index(ws: Workspace, ds: Dataset, stamp: str | None) -> keys.KeyIndex:
    return keys.KeyIndex(ws.state_path("keys", f"{ds.name}.sqlite"), ws.root, ds, stamp)


def _index(ws: Workspace, ds: Dataset, stamp: str) -> keys.KeyIndex:
    """The key cache, rebuilt from the versioned shards when it does not match the data set."""
    index = _key_index(ws, ds, stamp)
    if not index.is_current():
        if index.missing_shards():
            ws.dvc.pull([str(ws.root / POINTER)])  # a clone that has not pulled its data yet
        if missing := index.missing_shards():
            index.close()
            raise DataError(f"key shard {missing[0]} is missing from data/ and from the DVC remote")
        index.rebuild()
    return index


@dataclass
class _New:
    """A row new to the data set: its key hash, its values, its split and whether the row named it."""

    khash: str
    row: dict[str, Any]
    split: str
    named: bool


def _dedupe(ws: Workspace, ds: Dataset, stamp: str, good: list[tuple[rows.RawRow, dict[str, Any]]]
            ) -> tuple[list[_New], int, int]:
    """Rows whose key is new to the data set and to this batch, the number of duplicates dropped, and
    how many of those named another split than their key has (in the data set, or earlier in the batch)."""
    first: dict[str, _New] = {}
    dropped: list[tuple[str, str | None]] = []  # (key hash, split the row named) of every row dropped
    for _raw, typed in good:
        named = typed.get(SPLIT_KEY)
        row = {k: v for k, v in typed.items() if k != SPLIT_KEY} if SPLIT_KEY in typed else typed
        khash = keys.key_hash(row, ds.key)
        if khash in first:
            dropped.append((khash, named))
        else:
            first[khash] = _New(khash, row, named or keys.split_for(khash, ds.splits), named is not None)
    try:
        with _index(ws, ds, stamp) as index:
            recorded = index.splits_of(list(first))
    except (sqlite3.Error, OSError) as exc:  # the cache is local state: a full disk, a broken file
        raise RepoStateError(f"cannot use the key cache of '{ds.name}' ({_cache_rel(ws, ds)}): {_reason(exc)}; "
                             "nothing was ingested") from None
    for khash, item in first.items():
        if khash in recorded:
            dropped.append((khash, item.split if item.named else None))
    conflicts = sum(1 for khash, named in dropped
                    if named is not None and named != recorded.get(khash, first[khash].split))
    new = [item for khash, item in first.items() if khash not in recorded]
    return new, len(good) - len(new), conflicts


def _nothing_message(ds: Dataset, checked: rows.Checked, result: IngestResult) -> str:
    if not checked.good:
        return f"nothing ingested: no valid rows ({result.invalid} invalid)"
    return (f"nothing new: all {len(checked.good)} valid rows are already in '{ds.name}' "
            f"({result.duplicates} duplicates dropped); no new version")


def _render_batch(ds: Dataset, new: list[_New]) -> tuple[str, list[tuple[str, str]], dict[str, int]]:
    """The batch file's text (JSON Lines, each row with its ``split``), its key shard pairs and split counts."""
    counts = dict.fromkeys(ds.splits, 0)
    lines, pairs = [], []
    for item in new:
        counts[item.split] += 1
        pairs.append((item.khash, item.split))
        lines.append(json.dumps({**item.row, SPLIT_KEY: item.split}, ensure_ascii=False, separators=(",", ":"))
                     + "\n")
    return "".join(lines), pairs, counts


def _store_batch(ws: Workspace, ds: Dataset, stamp: str, new: list[_New], files: list[Path],
                 result: IngestResult) -> None:
    """Write the batch and its shard, update data.dvc and the data set file, commit (all in one transaction)."""
    latest = ds.latest()
    vid = f"v{refs.version_number(latest.id) + 1 if latest else 1}"
    body, pairs, counts = _render_batch(ds, new)
    sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
    batch = f"data/{ds.name}/b{refs.version_number(vid):06d}-{sha[:10]}.jsonl"
    shard = keys.shard_path(batch)
    ds_rel = layout.dataset_file(ds.name)
    root = ws.root
    sources = ", ".join(Path(f).name for f in files)
    split_text = ", ".join(f"{n} {c}" for n, c in counts.items())
    shard_text = keys.shard_text(pairs)
    _check_space(ws, len(body.encode("utf-8")) + len(shard_text), len(new))
    with ws.transaction([ds_rel, POINTER, ".gitignore"], [root / batch, root / shard], f"ingest {ds.name} {vid}"):
        yamlio.write_atomic(root / batch, body)
        yamlio.write_atomic(root / shard, shard_text)
        md5 = ws.dvc.add_to_dir(POINTER, TARGET, [batch, shard])
        total = (latest.total_rows if latest and latest.total_rows is not None
                 else sum(v.rows for v in ds.versions.values())) + len(new)
        version = DatasetVersion(id=vid, rows=len(new), splits=counts, batch=batch, md5=md5, source=sources,
                                 total_rows=total, created_at=timestamps.utc_now(), author=ws.git.user(),
                                 split_column=ds.split_column, normalize=list(ds.normalize) or None, sha256=sha)
        ds.versions[vid] = version
        stamp = layout.append_version(root, ws.cache, ds_rel, version, plain.dataset_version_fields(version),
                                      lambda: layout.write_dataset(root, ds), prev=stamp)
        message = (f"data: ingest {ds.name} {vid}: +{len(new)} rows ({split_text}) from {sources}\n\n"
                   f"{result.duplicates} duplicate and {result.invalid} invalid rows dropped; batch {batch}")
        if result.split_conflicts:
            message += (f"\n\n{result.split_conflicts} of the duplicates named another split than their key "
                        "already has; a key's split never changes")
        result.commit = ws.commit([ds_rel, POINTER, ".gitignore"], message)
    # After the commit: the cache only ever holds committed batches (it was made current in _dedupe).
    # The version exists now, so a cache that cannot take it is a note, not a failure: the next
    # ingest finds the cache behind the data set and rebuilds it from the committed shards.
    stale = ""
    try:
        with _key_index(ws, ds, None) as index:
            index.add_batch(batch, pairs, stamp)
    except (sqlite3.Error, OSError) as exc:
        stale = f" (the key cache could not take it: {_reason(exc)}; the next ingest rebuilds it)"
    result.version, result.batch, result.rows_added = vid, batch, counts
    result.split_named = sum(item.named for item in new)
    named = f"; {result.split_named} kept the split named in '{ds.split_column}'" if ds.split_column else ""
    result.message = f"{ds.name} {vid}: +{len(new)} rows ({split_text}{named}); total {total}{stale}"


def _cache_rel(ws: Workspace, ds: Dataset) -> str:
    path = ws.state_path("keys", f"{ds.name}.sqlite")
    try:
        return path.relative_to(ws.root).as_posix()
    except ValueError:
        return str(path)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


def _check_space(ws: Workspace, data_bytes: int, rows_added: int) -> None:
    """Refuse before the transaction when the disk cannot hold what it writes: the batch and its
    shard twice (work tree and DVC cache), the git objects and the key cache after the commit
    (about 160 bytes a key), with room to spare. A full disk then fails here, cleanly; one that
    fills up meanwhile fails inside the transaction, which rolls back."""
    need = 2 * data_bytes + 160 * rows_added + SPACE_MARGIN
    try:
        free = shutil.disk_usage(ws.root).free
    except OSError:
        return  # cannot tell: the transaction still rolls back on a failed write
    if free < need:
        raise RepoStateError(f"not enough free disk space to ingest: about {_size(need)} needed, {_size(free)} "
                             f"free on the file system of {ws.root}; nothing was ingested")


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KiB"


