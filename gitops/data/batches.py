"""The rows of a data set version: what training and evaluation read.

``ref`` is ``reviews@v3``, ``reviews@latest`` or ``reviews``; the rows are those of every batch up to
and including that version. ``rev`` is a git ref (default: the work tree). Batch files are read from
the work tree when present and intact (batches are immutable and their name carries a hash of their
content, which is checked); otherwise through DVC (the DVC adapter's file system), which serves them
from the local cache or the DVC remote, so a clone that never ran ``dvc pull`` can still read them.

Callers that already resolved the version (evaluation, training) pass the :class:`Dataset` and
:class:`DatasetVersion` to :func:`rows_of` instead of a reference, so it is resolved once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gitops.core import refs
from gitops.core.schema import Dataset, DatasetVersion
from gitops.core.workspace import Workspace
from gitops.errors import DataError, DvcError, NotFoundError


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


def _intact(data: bytes | None, batch: str) -> bytes | None:
    """``data`` if it matches the content hash in the batch file's name."""
    expected = batch.rsplit("-", 1)[-1].split(".", 1)[0]
    return data if data is not None and hashlib.sha256(data).hexdigest().startswith(expected) else None


def _read_batches(ws: Workspace, batches: list[DatasetVersion], rev: str | None) -> list[bytes]:
    out = [_intact((ws.root / v.batch).read_bytes() if (ws.root / v.batch).is_file() else None, v.batch)
           for v in batches]
    missing = [i for i, data in enumerate(out) if data is None]
    if missing:
        try:
            fetched = ws.dvc.read_bytes([batches[i].batch for i in missing], rev=rev)
        except DvcError as exc:
            name = batches[missing[0]].batch
            raise DataError(f"cannot read {name} (not in the work tree, the DVC cache or the remote): {exc}"
                            ) from None
        for i, data in zip(missing, fetched):
            out[i] = data
    return [data for data in out if data is not None]


def rows_of(ws: Workspace, dataset: Dataset, version: DatasetVersion, split: str | None = None, *,
            rev: str | None = None) -> list[dict[str, Any]]:
    """Rows (dicts with the schema's columns and ``split``) of every batch up to ``version``."""
    if split is not None and split not in dataset.splits:
        raise NotFoundError(f"data set '{dataset.name}' has no split '{split}' (splits: {', '.join(dataset.splits)})")
    batches = _batches(dataset, version)
    rows: list[dict[str, Any]] = []
    for v, data in zip(batches, _read_batches(ws, batches, rev)):
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
    for data in _read_batches(ws, _batches(dataset, version), rev):
        digest.update(data)
    return digest.hexdigest()
