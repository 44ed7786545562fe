"""The rows of a data set version: what training and evaluation read.

``ref`` is ``reviews@v3``, ``reviews@latest`` or ``reviews``; the rows are those of every batch up to
and including that version. ``rev`` is a git ref (default: the work tree). Batch files are read from
the work tree when present and intact; otherwise through DVC (the DVC adapter's file system), which
serves them from the local cache or the DVC remote, so a clone that never ran ``dvc pull`` can still
read them.

Released batches are immutable, and every copy is checked before use, wherever it came from: its
bytes must have the sha256 the version records (``sha256``; versions ingested before it was
recorded: the first 10 hex digits the batch file's name carries). A rewritten batch (new rows
``dvc add``-ed and pushed under the old name) is refused in one sentence, never read: this is the
one place training, evaluation, prediction, retrieval and serving read rows through.

Callers that already resolved the version (evaluation, training) pass the :class:`Dataset` and
:class:`DatasetVersion` to :func:`rows_of` instead of a reference, so it is resolved once.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from gitops.core import refs
from gitops.core.schema import Dataset, DatasetVersion
from gitops.core.workspace import Workspace
from gitops.errors import DataError, DvcError, IntegrityError, NotFoundError

# What ingest names a batch: ``data/<set>/b000001-<the first 10 hex digits of its sha256>.jsonl``.
BATCH_HASH = re.compile(r"-(?P<sha>[0-9a-f]{10,64})\.jsonl$")


def resolve(ws: Workspace, ref: str, *, rev: str | None = None) -> tuple[Dataset, DatasetVersion]:
    """The data set and version ``ref`` names, as recorded at ``rev`` (work tree by default)."""
    parsed = refs.parse_ref(ref, what="data set")
    dataset = ws.dataset(parsed.name) if rev is None else ws.dataset_at(parsed.name, rev)
    target = parsed.ref or "latest"
    if target == "latest":
        version = dataset.latest()
        if version is None:
            raise NotFoundError(f"data set '{dataset.name}' has no versions yet; ingest a batch first")
        return dataset, version
    if target not in dataset.versions:
        known = ", ".join(dataset.versions) or "none"
        raise NotFoundError(f"data set '{dataset.name}' has no version {target} (versions: {known})")
    return dataset, dataset.versions[target]


def _batches(dataset: Dataset, upto: DatasetVersion) -> list[DatasetVersion]:
    limit = refs.version_number(upto.id)
    return sorted((v for v in dataset.versions.values() if refs.version_number(v.id) <= limit),
                  key=lambda v: refs.version_number(v.id))


def expected_sha256(version: DatasetVersion) -> str | None:
    """The hash a version's batch bytes must have: the recorded sha256, else the prefix the batch
    file's name carries (None: the name carries none, so no copy can be trusted)."""
    if version.sha256:
        named = BATCH_HASH.search(version.batch)
        return version.sha256 if named is None or version.sha256.startswith(named["sha"]) else None
    named = BATCH_HASH.search(version.batch)
    return named["sha"] if named else None


def intact(data: bytes, version: DatasetVersion) -> bool:
    """Whether ``data`` are the bytes ``version`` released."""
    expected = expected_sha256(version)
    return expected is not None and hashlib.sha256(data).hexdigest().startswith(expected)


def _read_batches(ws: Workspace, dataset: Dataset, batches: list[DatasetVersion], rev: str | None) -> list[bytes]:
    for v in batches:
        if expected_sha256(v) is None:
            raise IntegrityError(f"{dataset.name}@{v.id}: batch '{v.batch}' carries no content hash (ingest names "
                                 "batches b000001-<sha256 prefix>.jsonl) or one that disagrees with its recorded "
                                 "sha256, so no copy of it can be checked; refusing to read it")
    out: list[bytes | None] = []
    for v in batches:
        local = ws.root / v.batch
        data = local.read_bytes() if local.is_file() and not local.is_symlink() else None
        out.append(data if data is not None and intact(data, v) else None)
    missing = [i for i, data in enumerate(out) if data is None]
    if missing:
        try:
            fetched = ws.dvc.read_bytes([batches[i].batch for i in missing], rev=rev)
        except DvcError as exc:
            name = batches[missing[0]].batch
            raise DataError(f"cannot read {name} (not in the work tree, the DVC cache or the remote): {exc}"
                            ) from None
        for i, data in zip(missing, fetched):
            v = batches[i]
            if not intact(data, v):
                got = hashlib.sha256(data).hexdigest()
                raise IntegrityError(
                    f"{v.batch} ({dataset.name}@{v.id}): the copy DVC served has sha256 {got[:16]}..., not the "
                    f"{(expected_sha256(v) or '')[:16]}... that {dataset.name}@{v.id} released; a released batch was "
                    "rewritten (or its cached copy is corrupted), so it is refused: restore the data.dvc that "
                    "released it and 'dvc pull', or ingest new rows as a new version")
            out[i] = data
    return [data for data in out if data is not None]


def rows_of(ws: Workspace, dataset: Dataset, version: DatasetVersion, split: str | None = None, *,
            rev: str | None = None) -> list[dict[str, Any]]:
    """Rows (dicts with the schema's columns and ``split``) of every batch up to ``version``."""
    if split is not None and split not in dataset.splits:
        raise NotFoundError(f"data set '{dataset.name}' has no split '{split}' (splits: {', '.join(dataset.splits)})")
    batches = _batches(dataset, version)
    rows: list[dict[str, Any]] = []
    for v, data in zip(batches, _read_batches(ws, dataset, batches, rev), strict=True):
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{v.batch}:{number}: not valid JSON (the batch file is corrupted)") from None
            if split is None or row.get("split") == split:
                rows.append(row)
    return rows


def read_rows(ws: Workspace, ref: str, split: str | None = None, *, rev: str | None = None) -> list[dict]:
    """Rows of every batch up to the version ``ref`` names (see :func:`rows_of`)."""
    return rows_of(ws, *resolve(ws, ref, rev=rev), split, rev=rev)


def read_texts(ws: Workspace, ref: str, split: str | None = None, *, rev: str | None = None) -> list[str]:
    """The text field of :func:`read_rows`."""
    dataset, version = resolve(ws, ref, rev=rev)
    return [row[dataset.text_field] for row in rows_of(ws, dataset, version, split, rev=rev)]


def dataset_md5(ws: Workspace, ref: str, *, rev: str | None = None) -> str:
    """An md5 of the version's content (its batch files in order): equal md5, equal rows.

    The version record's own ``md5`` is the DVC hash of all of ``data/`` at that commit; this one
    depends only on this data set's batches up to the version, which is what a trained model used.
    """
    dataset, version = resolve(ws, ref, rev=rev)
    digest = hashlib.md5()
    for data in _read_batches(ws, dataset, _batches(dataset, version), rev):
        digest.update(data)
    return digest.hexdigest()
