"""Data set verbs: create a data set, ingest batches into it, describe it. Returns data, never prints.

An ingest is: recover any interrupted ingest, validate every row, drop rows whose key the data set
already holds (local key cache, see :mod:`gitops.data.keys`) and duplicates inside the batch, split
by key hash, write one immutable batch file plus its key shard under ``data/<name>/``, update
``data.dvc`` incrementally (:mod:`gitops.data.dvcdir`), append a version to
``registry/datasets/<name>.yaml`` and commit. A journal (:mod:`gitops.data.journal`) makes the whole
thing all-or-nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.adapters import dvc as dvc_adapter
from gitops.adapters import git
from gitops.data import dsfile, dvcdir, journal, keys, rows
from gitops.errors import DataError, RepoStateError
from gitops.registry import refs, schema, store
from gitops.registry.schema import Dataset, DatasetVersion

Progress = Callable[[str], None]


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


def load_dataset(root: Path, name: str) -> Dataset:
    """One data set from the work tree, fully validated (parse cached by text hash, see :mod:`dsfile`)."""
    return dsfile.load(root, name)


def create_dataset(root: Path, name: str, columns: dict[str, str], text_field: str, key: list[str],
                   splits: dict[str, float] | None = None, description: str = "") -> Dataset:
    """Write ``registry/datasets/<name>.yaml`` with the schema and split rule, and commit it."""
    rel = store.dataset_file(name)
    if problem := refs.name_problem(name, "data set"):
        raise DataError(problem)
    if (root / rel).exists():
        raise DataError(f"data set '{name}' already exists ({rel})")
    dataset = Dataset(name=name, columns=dict(columns), text_field=text_field, key=list(key),
                      splits=dict(splits or {"train": 0.8, "valid": 0.1, "test": 0.1}), description=description)
    if text_field in columns and columns[text_field] != "string":
        raise DataError(f"text field '{text_field}' must be a string column, not {columns[text_field]}")
    # Validate through the same parser that reads the file back, so both agree on what is legal.
    problems = schema.Problems()
    schema.parse_dataset(yamlio.loads(yamlio.dumps(dataset.header_dict()), rel), rel, name, problems)
    if problems:
        reasons = [p.split(": ", 1)[-1] for p in problems]  # drop the "file:line" of the in-memory text
        raise DataError(f"data set '{name}' is invalid: {reasons[0]}", problems=reasons[1:])
    store.write_dataset(root, dataset)
    git.add(root, [rel])
    git.commit(root, f"data: create data set {name} ({', '.join(columns)}; key {', '.join(key)})", [rel])
    return dataset


def show_dataset(root: Path, name: str, rev: str | None = None) -> Dataset:
    """The data set as recorded in the work tree (or at git ``rev``)."""
    if rev is None:
        return load_dataset(root, name)
    return dataset_at(root, name, rev)


def dataset_at(root: Path, name: str, rev: str) -> Dataset:
    """The data set as committed at git ``rev``."""
    return dsfile.at_rev(root, name, rev)


def ingest(root: Path, files: list[Path], dataset: str, *, skip_invalid: bool = False, push: bool = False,
           progress: Progress | None = None) -> IngestResult:
    """Validate, dedupe, split and store ``files`` as one new version of ``dataset`` (see module doc)."""
    with journal.locked(root):
        return _ingest(root, files, dataset, skip_invalid, push, progress or (lambda _msg: None))


def _ingest(root: Path, files: list[Path], dataset: str, skip_invalid: bool, push: bool, say: Progress
            ) -> IngestResult:
    recovered = journal.recover(root)
    ds = load_dataset(root, dataset)
    _require_clean(root, dataset)
    if push:
        _check_remotes(root)  # before anything: a push that cannot happen should not follow a commit
    say(f"validating {len(files)} file(s)")
    checked = rows.check_files([Path(f) for f in files], ds)
    result = IngestResult(dataset=dataset, version=None, invalid=len(checked.rejects), recovered=recovered)
    if checked.rejects and not skip_invalid:
        sentence, lines = rows.summary(checked.rejects)
        raise DataError(f"{sentence}; nothing was ingested (use --skip-invalid to keep the valid rows)",
                        problems=lines)
    if checked.rejects:
        result.rejects_paths = rows.write_rejects(checked)
    say("checking keys against the data set")
    new, result.duplicates = _dedupe(root, ds, checked.good)
    if not new:
        result.message = _nothing_message(ds, checked, result)
        return result
    say(f"storing {len(new)} new rows")
    _store_batch(root, ds, new, files, result)
    if push:
        say("pushing data and commit")
        _push(root)
        result.pushed = True
    return result


def _require_clean(root: Path, dataset: str) -> None:
    ours = {store.dataset_file(dataset), dvcdir.POINTER, ".gitignore"}
    dirty = [p for p in git.dirty_paths(root) if p in ours]
    if dirty:
        raise RepoStateError(f"cannot ingest: {', '.join(dirty)} has uncommitted changes; commit or restore it first")


def _index(root: Path, ds: Dataset) -> keys.KeyIndex:
    """The key cache, rebuilt from the versioned shards when it does not match the data set."""
    index = keys.KeyIndex(root, ds, dsfile.digest_of(root, ds.name))
    if not index.is_current():
        if index.missing_shards():
            dvc_adapter.pull(root, [str(root / dvcdir.POINTER)])  # a clone that has not pulled its data yet
        if missing := index.missing_shards():
            index.close()
            raise DataError(f"key shard {missing[0]} is missing from data/ and from the DVC remote")
        index.rebuild()
    return index


def _dedupe(root: Path, ds: Dataset, good: list[tuple[rows.RawRow, dict[str, Any]]]
            ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Rows whose key is new to the data set and to this batch, each with its key hash."""
    hashed = [(keys.key_hash(row, ds.key), row) for _raw, row in good]
    seen: set[str] = set()
    unique = []
    for khash, row in hashed:
        if khash not in seen:
            seen.add(khash)
            unique.append((khash, row))
    with _index(root, ds) as index:
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


def _store_batch(root: Path, ds: Dataset, new: list[tuple[str, dict[str, Any]]], files: list[Path],
                 result: IngestResult) -> None:
    """Write the batch and its shard, update data.dvc and the data set file, commit (all under the journal)."""
    latest = ds.latest()
    vid = f"v{refs.version_number(latest.id) + 1 if latest else 1}"
    body, pairs, counts = _render_batch(ds, new)
    sha = hashlib.sha256(body.encode("utf-8")).hexdigest()[:10]
    batch = f"data/{ds.name}/b{refs.version_number(vid):06d}-{sha}.jsonl"
    shard = keys.shard_path(batch)
    ds_rel = store.dataset_file(ds.name)
    tracked = [ds_rel, dvcdir.POINTER, ".gitignore"]
    plan = journal.Journal.capture(root, ds.name, vid, tracked, [batch, shard])
    plan.write(root)
    yamlio.write_atomic(root / batch, body)
    yamlio.write_atomic(root / shard, keys.shard_text(pairs))
    md5 = dvcdir.add_files(root, [batch, shard])
    total = (latest.total_rows if latest and latest.total_rows is not None
             else sum(v.rows for v in ds.versions.values())) + len(new)
    sources = ", ".join(Path(f).name for f in files)
    ds.versions[vid] = DatasetVersion(id=vid, rows=len(new), splits=counts, batch=batch, md5=md5, source=sources,
                                      total_rows=total, created_at=_now(), author=git.user(root))
    dsfile.append_version(root, ds, ds.versions[vid])
    tracked = [p for p in tracked if (root / p).exists()]
    # 'git commit -- paths' stages tracked files itself; a separate 'git add' would hash the grown
    # data set file twice. Only the first ingest's new data.dvc/.gitignore need adding.
    git.add(root, [p for p in tracked if p not in plan.tracked])
    split_text = ", ".join(f"{n} {c}" for n, c in counts.items())
    message = (f"data: ingest {ds.name} {vid}: +{len(new)} rows ({split_text}) from {sources}\n\n"
               f"{result.duplicates} duplicate and {result.invalid} invalid rows dropped; batch {batch}")
    result.commit = git.commit(root, message, tracked)
    journal.clear(root)
    # After the commit: the cache only ever holds committed batches (it was made current in _dedupe).
    with keys.KeyIndex(root, ds) as index:
        index.add_batch(batch, pairs, dsfile.digest_of(root, ds.name))
    result.version, result.batch, result.rows_added = vid, batch, counts
    result.message = f"{ds.name} {vid}: +{len(new)} rows ({split_text}); total {total}"


def _check_remotes(root: Path) -> None:
    if dvc_adapter.remote_url(root) is None:
        raise RepoStateError(f"cannot --push: {root / '.dvc/config'} names no default DVC remote "
                             "(dvc remote add -d storage URL)")
    if "origin" not in git.run(root, "remote").split():
        raise RepoStateError("cannot --push: git has no remote 'origin' (git remote add origin URL)")


def _push(root: Path) -> None:
    dvc_adapter.push(root, [str(root / dvcdir.POINTER)])
    git.push(root, "origin", git.current_branch(root))


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
