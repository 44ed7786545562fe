"""``gitops ingest``: validate, dedupe, split and store a batch as a new data set version.

An ingest is: recover any interrupted ingest, validate every row, drop rows whose key the data set
already holds (local key cache, see :mod:`gitops.data.keys`) and duplicates inside the batch, split
by key hash, write one immutable batch file plus its key shard under ``data/<name>/``, update
``data.dvc`` incrementally (:meth:`gitops.adapters.dvc.Dvc.add_to_dir`), append a version to
``registry/datasets/<name>.yaml`` and commit. The write-ahead journal every committing verb shares
(:mod:`gitops.core.journal`) makes the whole thing all-or-nothing, even under SIGKILL: the next
command rolls a killed ingest back or forward before it does anything else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import timestamps, yamlio
from gitops.core import layout, refs, schema
from gitops.core.schema import Dataset, DatasetVersion
from gitops.core.workspace import Workspace
from gitops.data import keys, rows
from gitops.errors import DataError, RepoStateError

Progress = Callable[[str], None]
POINTER = "data.dvc"  # one DVC pointer for all of data/
TARGET = "data"


@dataclass
class IngestResult:
    """What an ingest did. ``version`` is None when nothing new was added (or nothing was valid)."""

    dataset: str
    version: str | None
    rows_added: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
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
           progress: Progress | None = None) -> IngestResult:
    """Validate, dedupe, split and store ``files`` as one new version of ``dataset`` (see module doc)."""
    with ws.writing("ingest") as recovered:
        result = _ingest(ws, files, dataset, skip_invalid, push, progress or (lambda _msg: None))
        result.recovered = recovered
        return result


def _ingest(ws: Workspace, files: list[Path], dataset: str, skip_invalid: bool, push: bool, say: Progress
            ) -> IngestResult:
    ds, stamp = ws.read_dataset(dataset)
    _require_clean(ws, dataset)
    if push:
        ws.check_push()  # before anything: a push that cannot happen should not follow a commit
    say(f"validating {len(files)} file(s)")
    checked = rows.check_files([Path(f) for f in files], ds)
    result = IngestResult(dataset=dataset, version=None, invalid=len(checked.rejects))
    if checked.rejects and not skip_invalid:
        sentence, lines = rows.summary(checked.rejects)
        raise DataError(f"{sentence}; nothing was ingested (use --skip-invalid to keep the valid rows)",
                        problems=lines)
    if checked.rejects:
        result.rejects_paths = rows.write_rejects(checked)
    say("checking keys against the data set")
    new, result.duplicates = _dedupe(ws, ds, stamp, checked.good)
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


def _dedupe(ws: Workspace, ds: Dataset, stamp: str, good: list[tuple[rows.RawRow, dict[str, Any]]]
            ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Rows whose key is new to the data set and to this batch, each with its key hash."""
    hashed = [(keys.key_hash(row, ds.key), row) for _raw, row in good]
    seen: set[str] = set()
    unique = []
    for khash, row in hashed:
        if khash not in seen:
            seen.add(khash)
            unique.append((khash, row))
    with _index(ws, ds, stamp) as index:
        known = index.known([h for h, _ in unique])
    new = [(h, row) for h, row in unique if h not in known]
    return new, len(hashed) - len(new)


def _nothing_message(ds: Dataset, checked: rows.Checked, result: IngestResult) -> str:
    if not checked.good:
        return f"nothing ingested: no valid rows ({result.invalid} invalid)"
    return (f"nothing new: all {len(checked.good)} valid rows are already in '{ds.name}' "
            f"({result.duplicates} duplicates dropped); no new version")


def _render_batch(ds: Dataset, new: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[str, list[tuple[str, str]], dict[str, int]]:
    """The batch file's text (JSON Lines, each row with its ``split``), its key shard pairs and split counts."""
    counts = {name: 0 for name in ds.splits}
    lines, pairs = [], []
    for khash, row in new:
        split = keys.split_for(khash, ds.splits)
        counts[split] += 1
        pairs.append((khash, split))
        lines.append(json.dumps({**row, "split": split}, ensure_ascii=False, separators=(",", ":")) + "\n")
    return "".join(lines), pairs, counts


def _store_batch(ws: Workspace, ds: Dataset, stamp: str, new: list[tuple[str, dict[str, Any]]], files: list[Path],
                 result: IngestResult) -> None:
    """Write the batch and its shard, update data.dvc and the data set file, commit (all in one transaction)."""
    latest = ds.latest()
    vid = f"v{refs.version_number(latest.id) + 1 if latest else 1}"
    body, pairs, counts = _render_batch(ds, new)
    sha = hashlib.sha256(body.encode("utf-8")).hexdigest()[:10]
    batch = f"data/{ds.name}/b{refs.version_number(vid):06d}-{sha}.jsonl"
    shard = keys.shard_path(batch)
    ds_rel = layout.dataset_file(ds.name)
    root = ws.root
    sources = ", ".join(Path(f).name for f in files)
    split_text = ", ".join(f"{n} {c}" for n, c in counts.items())
    with ws.transaction([ds_rel, POINTER, ".gitignore"], [root / batch, root / shard], f"ingest {ds.name} {vid}"):
        yamlio.write_atomic(root / batch, body)
        yamlio.write_atomic(root / shard, keys.shard_text(pairs))
        md5 = ws.dvc.add_to_dir(POINTER, TARGET, [batch, shard])
        total = (latest.total_rows if latest and latest.total_rows is not None
                 else sum(v.rows for v in ds.versions.values())) + len(new)
        version = DatasetVersion(id=vid, rows=len(new), splits=counts, batch=batch, md5=md5, source=sources,
                                 total_rows=total, created_at=timestamps.utc_now(), author=ws.git.user())
        ds.versions[vid] = version
        stamp = layout.append_version(root, ws.cache, ds_rel, version, schema.dataset_version_fields(version),
                                      lambda: layout.write_dataset(root, ds), prev=stamp)
        message = (f"data: ingest {ds.name} {vid}: +{len(new)} rows ({split_text}) from {sources}\n\n"
                   f"{result.duplicates} duplicate and {result.invalid} invalid rows dropped; batch {batch}")
        result.commit = ws.commit([ds_rel, POINTER, ".gitignore"], message)
    # After the commit: the cache only ever holds committed batches (it was made current in _dedupe).
    with _key_index(ws, ds, None) as index:
        index.add_batch(batch, pairs, stamp)
    result.version, result.batch, result.rows_added = vid, batch, counts
    result.message = f"{ds.name} {vid}: +{len(new)} rows ({split_text}); total {total}"
