"""Read a data set version's rows: what training and evaluation call.

``ref`` is ``reviews@v3``, ``reviews@latest`` or ``reviews``; the rows are those of every batch up to
and including that version. ``rev`` is a git ref (default: the work tree). Batch files are read from
the work tree when present and intact (batches are immutable and their name carries a hash of their
content, which is checked); otherwise through DVC (``DVCFileSystem``), which serves them from the
local cache or the DVC remote, so a clone that never ran ``dvc pull`` can still read them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gitops.errors import DataError, NotFoundError
from gitops.registry import refs
from gitops.registry.schema import Dataset, DatasetVersion


def resolve(root: Path, ref: str, *, rev: str | None = None) -> tuple[Dataset, DatasetVersion]:
    """The data set and version ``ref`` names, as recorded at ``rev`` (work tree by default)."""
    from gitops.data import dsfile

    parsed = refs.parse_ref(ref, what="data set")
    dataset = dsfile.load(root, parsed.name) if rev is None else dsfile.at_rev(root, parsed.name, rev)
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


def _intact(path: Path, batch: str) -> bytes | None:
    """The local file's bytes if it exists and matches the content hash in its name."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    expected = batch.rsplit("-", 1)[-1].split(".", 1)[0]
    return data if hashlib.sha256(data).hexdigest().startswith(expected) else None


def _read_batches(root: Path, batches: list[DatasetVersion], rev: str | None) -> list[bytes]:
    out: list[bytes | None] = [_intact(root / v.batch, v.batch) for v in batches]
    missing = [i for i, data in enumerate(out) if data is None]
    if missing:
        from dvc.api import DVCFileSystem

        try:
            fs = DVCFileSystem(str(root), rev=rev)
            for i in missing:
                out[i] = fs.read_bytes(batches[i].batch)
        except Exception as exc:  # DVC raises many types (missing cache, unreachable remote, ...)
            name = batches[missing[0]].batch
            raise DataError(f"cannot read {name} (not in the work tree, the DVC cache or the remote): {exc}"
                            ) from None
    return [data for data in out if data is not None]


def read_rows(root: Path, ref: str, split: str | None = None, *, rev: str | None = None) -> list[dict]:
    """Rows (dicts with the schema's columns and ``split``) of every batch up to ``ref``'s version."""
    dataset, version = resolve(Path(root), ref, rev=rev)
    if split is not None and split not in dataset.splits:
        raise NotFoundError(f"data set '{dataset.name}' has no split '{split}' (splits: {', '.join(dataset.splits)})")
    batches = _batches(dataset, version)
    rows: list[dict[str, Any]] = []
    for v, data in zip(batches, _read_batches(Path(root), batches, rev)):
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{v.batch}:{number}: not valid JSON (the batch file is corrupted)") from None
            if split is None or row.get("split") == split:
                rows.append(row)
    return rows


def read_texts(root: Path, ref: str, split: str | None = None, *, rev: str | None = None) -> list[str]:
    """The text field of :func:`read_rows`."""
    dataset, _version = resolve(Path(root), ref, rev=rev)
    return [row[dataset.text_field] for row in read_rows(root, ref, split, rev=rev)]


def dataset_md5(root: Path, ref: str, *, rev: str | None = None) -> str:
    """An md5 of the version's content (its batch files in order): equal md5, equal rows.

    The version record's own ``md5`` is the DVC hash of all of ``data/`` at that commit; this one
    depends only on this data set's batches up to the version, which is what a trained model used.
    """
    dataset, version = resolve(Path(root), ref, rev=rev)
    digest = hashlib.md5()
    for data in _read_batches(Path(root), _batches(dataset, version), rev):
        digest.update(data)
    return digest.hexdigest()
