"""Keep ``data.dvc`` (one DVC pointer for all of ``data/``) up to date at a cost that follows the batch.

``dvc add data`` re-walks the whole directory on every call: it stats every file, looks each up in
DVC's state db and checks each object in the cache. Measured here with 2,000 small files it takes
~1.4 s, against well under a second for a handful, and it keeps growing with the data set.

Batches are immutable and only ever added, so the new directory tree is the old tree plus the new
files. :func:`add_files` does exactly that: it reads the previous ``.dir`` manifest from the cache,
hashes and caches only the new files, and stores the new manifest and pointer. It does not even open
a DVC repo (that alone costs ~40 ms). A first version went through ``dvc_data``'s ``Tree`` objects;
building them for 2,000 entries cost ~30 ms, half the whole ingest. The result is byte-for-byte what
``dvc add data`` records (a test compares them, and ``dvc status``/``push``/``pull`` use it). The
first ingest of a repository (no ``data.dvc`` yet) uses plain ``dvc add``, which also writes the
``/data`` line into ``.gitignore``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gitops import yamlio
from gitops.adapters import dvc as dvc_adapter
from gitops.errors import DvcError

POINTER = "data.dvc"
TARGET = "data"


def cache_dir(root: Path) -> Path:
    """The DVC 3 object directory for md5 hashes (``[cache] dir`` in ``.dvc/config`` is honoured)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
    return (root / ".dvc" / cfg.get("cache", "dir", fallback="cache")).resolve() / "files" / "md5"


def _object(cache: Path, md5: str) -> Path:
    return cache / md5[:2] / md5[2:]


def manifest_cached(root: Path) -> bool:
    """Whether the ``.dir`` manifest that ``data.dvc`` names is in the local DVC cache."""
    md5 = dvc_adapter.read_pointer(root / POINTER)["md5"]
    return _object(cache_dir(root), md5).is_file()


def _store(cache: Path, md5: str, data: bytes) -> None:
    """Put an object into the cache the way DVC does: atomically, then read-only."""
    target = _object(cache, md5)
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o444)
    os.replace(tmp, target)


def add_files(root: Path, rels: list[str]) -> str:
    """Track the new files ``rels`` (paths under ``data/``) and rewrite ``data.dvc``; return its md5.

    The ``.dir`` manifest is DVC's JSON list of ``{"md5", "relpath"}`` sorted by relpath and dumped
    with sorted keys (``dvc_data`` ``Tree.as_bytes``); its md5 plus ``.dir`` names the directory.
    Working on that list directly, rather than through ``Tree`` objects, keeps the per-file cost of
    the old entries to JSON parsing (~1 us each); a test checks the result equals ``dvc add``'s.
    """
    pointer_path = root / POINTER
    if not pointer_path.exists():
        # absolute: DVC resolves targets against the process cwd, not the repo
        return dvc_adapter.add(root, str(root / TARGET))
    pointer = dvc_adapter.read_pointer(pointer_path)
    if not manifest_cached(root):  # e.g. a clone that never pulled: fetch the old tree first
        dvc_adapter.pull(root, [str(pointer_path)])
    cache = cache_dir(root)
    old = _object(cache, pointer["md5"])
    if not old.is_file():
        raise DvcError(f"{POINTER}: the manifest {pointer['md5']} is in neither the DVC cache nor the remote")
    try:
        entries = {e["relpath"]: e for e in json.loads(old.read_bytes())}
    except (ValueError, KeyError, TypeError):
        raise DvcError(f"{old}: the DVC manifest of data/ is corrupted") from None
    size = int(pointer.get("size") or 0)
    for rel in rels:
        data = (root / rel).read_bytes()
        md5 = hashlib.md5(data).hexdigest()  # DVC 3 'md5' is the plain md5 of the bytes
        _store(cache, md5, data)
        relpath = Path(rel).relative_to(TARGET).as_posix()
        if relpath not in entries:
            size += len(data)
        entries[relpath] = {"md5": md5, "relpath": relpath}
    manifest = json.dumps([entries[k] for k in sorted(entries)], sort_keys=True).encode("utf-8")
    oid = hashlib.md5(manifest).hexdigest() + ".dir"
    _store(cache, oid, manifest)
    new = {"md5": oid, "size": size, "nfiles": len(entries), "hash": "md5", "path": TARGET}
    yamlio.write_atomic(pointer_path, yamlio.dumps({"outs": [new]}))
    return oid
