"""Keep ``data.dvc`` (one DVC pointer for all of ``data/``) up to date at a cost that follows the batch.

``dvc add data`` re-walks the whole directory on every call: it stats every file, looks each up in
DVC's state db and checks each object in the cache. Measured here with 2,000 small files it takes
~1.4 s (CLI, warm) and it keeps growing with the data set; an ingest is ~40 ms without it.

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

import bisect
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
    size, added = int(pointer.get("size") or 0), {}
    for rel in rels:
        data = (root / rel).read_bytes()
        md5 = hashlib.md5(data).hexdigest()  # DVC 3 'md5' is the plain md5 of the bytes
        _store(cache, md5, data)
        added[Path(rel).relative_to(TARGET).as_posix()] = (md5, len(data))
    old_text = old.read_bytes().decode("utf-8", errors="replace")
    items = _plain_items(old_text, pointer.get("nfiles"), added)
    if items is None:
        items, size = _parsed_items(old, old_text, added, size)
    else:
        size += sum(n for _md5, n in added.values())
    manifest = ("[" + ", ".join(items) + "]").encode("utf-8")
    oid = hashlib.md5(manifest).hexdigest() + ".dir"
    _store(cache, oid, manifest)
    new = {"md5": oid, "size": size, "nfiles": len(items), "hash": "md5", "path": TARGET}
    yamlio.write_atomic(pointer_path, yamlio.dumps({"outs": [new]}))
    return oid


_HEAD = '{"md5": "'  # an entry as json.dumps(sort_keys=True) writes it: _HEAD md5 _MID relpath '"}'
_MID = '", "relpath": "'
_REL = len(_HEAD) + 32 + len(_MID)  # where the relpath starts in an entry


def _entry(relpath: str, md5: str) -> str:
    return json.dumps({"md5": md5, "relpath": relpath}, sort_keys=True)


def _plain_items(text: str, nfiles: object, added: dict[str, tuple[str, int]]) -> list[str] | None:
    """The manifest's entries as text with the new ones inserted in relpath order, without a JSON round trip.

    Decoding and re-encoding 2,000 entries costs ~3 ms per ingest; splitting the text costs ~0.1 ms.
    Only for the plain case (every relpath is plain ASCII without quotes or escapes, no entry is
    replaced, the count matches the pointer's ``nfiles``): None sends anything else down the JSON path.
    """
    if "\\" in text or not text.startswith("[") or not text.endswith("]") or not isinstance(nfiles, int):
        return None
    if any(_entry(rel, md5)[_REL:] != rel + '"}' or not rel.isascii() for rel, (md5, _n) in added.items()):
        return None
    items = text[1:-1].split(", " + _HEAD)
    if items == [""]:
        items = []
    if len(items) != nfiles:
        return None
    if items:
        items[1:] = [_HEAD + item for item in items[1:]]
    if not all(len(i) > _REL and i.startswith(_HEAD) and i[_REL - len(_MID):_REL] == _MID and i.endswith('"}')
               for i in (items[:1] + items[-1:])):
        return None
    for rel, (md5, _n) in sorted(added.items()):
        at = bisect.bisect_left(items, rel, key=lambda item: item[_REL:-2])
        if at < len(items) and items[at][_REL:-2] == rel:
            return None  # replacing an entry: let the JSON path handle it
        items.insert(at, _entry(rel, md5))
    return items


def _parsed_items(old: Path, text: str, added: dict[str, tuple[str, int]], size: int) -> tuple[list[str], int]:
    """The general path: decode the manifest, merge, re-encode each entry as ``dvc add`` would."""
    try:
        entries = {e["relpath"]: e for e in json.loads(text)}
    except (ValueError, KeyError, TypeError):
        raise DvcError(f"{old}: the DVC manifest of data/ is corrupted") from None
    for relpath, (md5, n) in added.items():
        if relpath not in entries:
            size += n
        entries[relpath] = {"md5": md5, "relpath": relpath}
    return [json.dumps(entries[k], sort_keys=True) for k in sorted(entries)], size
