"""Keep ``data.dvc`` (one DVC pointer for all of ``data/``) up to date at a cost that follows the batch.

``dvc add data`` re-walks the whole directory on every call: it stats every file, looks each up in
DVC's state db and checks each object in the cache. Measured here with 2,000 small files it takes
~1.4 s, against well under a second for a handful, and it keeps growing with the data set.

Batches are immutable and only ever added, so the new directory tree is the old tree plus the new
files. :func:`add_files` does exactly that with DVC's own objects (``dvc_data``'s ``Tree``): it loads
the previous ``.dir`` manifest from the cache, hashes and caches only the new files, and stores the
new manifest. The result is byte-for-byte what ``dvc add data`` records (a test compares them). The
first ingest of a repository (no ``data.dvc`` yet) uses plain ``dvc add``, which also writes the
``/data`` line into ``.gitignore``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path

from gitops import yamlio
from gitops.adapters import dvc as dvc_adapter
from gitops.errors import DvcError

POINTER = "data.dvc"
TARGET = "data"


def manifest_cached(root: Path) -> bool:
    """Whether the ``.dir`` manifest that ``data.dvc`` names is in the local DVC cache."""
    md5 = dvc_adapter.read_pointer(root / POINTER)["md5"]
    with _cache(root) as odb:
        return odb.exists(md5)


@contextlib.contextmanager
def _cache(root: Path):  # type: ignore[no-untyped-def]
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.ERROR)
    try:
        with Repo(str(root)) as repo:
            yield repo.cache.local
    except DvcException as exc:
        raise DvcError(f"dvc: {exc}") from None


def add_files(root: Path, rels: list[str]) -> str:
    """Track the new files ``rels`` (paths under ``data/``) and rewrite ``data.dvc``; return its md5."""
    pointer_path = root / POINTER
    if not pointer_path.exists():
        return dvc_adapter.add(root, TARGET)
    from dvc_data.hashfile.db import add_update_tree
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    pointer = dvc_adapter.read_pointer(pointer_path)
    with _cache(root) as odb:
        tree = Tree.load(odb, HashInfo("md5", pointer["md5"]))
        size = int(pointer.get("size") or 0)
        for rel in rels:
            path = root / rel
            md5 = hashlib.md5(path.read_bytes()).hexdigest()  # DVC 3 'md5' is the plain md5 of the bytes
            odb.add(str(path), odb.fs, md5)
            key = tuple(Path(rel).relative_to(TARGET).parts)
            if tree.get(key) is None:
                size += path.stat().st_size
            tree.add(key, Meta(size=path.stat().st_size), HashInfo("md5", md5))
        tree.digest()
        add_update_tree(odb, tree)
        new = {"md5": tree.oid, "size": size, "nfiles": len(tree), "hash": "md5", "path": TARGET}
    yamlio.write_atomic(pointer_path, yamlio.dumps({"outs": [new]}))
    return tree.oid
