"""The output directory, written incrementally.

A manifest (``.gitops-site.json``) records, for every page, a hash of what it was made from (its
view and the templates' fingerprint) and the size and time of the file written. A page whose
inputs did not change and whose file is as it was left is not even rendered; a rendered page
whose bytes equal the file's is not written. Pages of things that disappeared are removed (only
files the manifest lists: nothing else in the directory is ever touched).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops.errors import RepoStateError, shown

MANIFEST = ".gitops-site.json"
MANIFEST_VERSION = 1


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # every page's size in bytes


def check_out_dir(out: Path, root: Path) -> None:
    """Refuse an output directory that is not ours to fill, before anything is read or written:
    a file, the repository itself, or a non-empty directory ``gitops site`` did not make."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise RepoStateError(f"--out {shown(out)} is a file; give a directory for the pages")
    if out == root.resolve() or out in root.resolve().parents:
        raise RepoStateError(f"--out {shown(out)} would hold the repository itself; give a new directory "
                             "such as _site")
    if out.is_dir() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise RepoStateError(f"--out {shown(out)} is not empty and was not made by gitops site; give a new or "
                             "empty directory")


def key_of(view: dict, fingerprint: str) -> str:
    text = json.dumps(view, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256((fingerprint + "\0" + text).encode("utf-8")).hexdigest()


def write_site(out: Path, pages: list[tuple[str, str, Callable[[], bytes]]]) -> Outcome:
    """Bring ``out`` to exactly ``pages`` (path, key, render): render and write only what changed."""
    out.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(out)
    new: dict[str, dict] = {}
    result = Outcome()
    for path, key, render in pages:
        target = out / path
        before = old.get(path)
        stat = _stat(target)
        if before and before.get("key") == key and stat is not None \
                and stat == (before.get("size"), before.get("mtime")):
            new[path] = before
            result.unchanged += 1
            result.sizes[path] = stat[0]
            continue
        data = render()
        if stat is not None and stat[0] == len(data) and target.read_bytes() == data:
            result.unchanged += 1
        else:
            _write(target, data)
            result.written.append(path)
        stat = _stat(target)
        assert stat is not None
        new[path] = {"key": key, "size": stat[0], "mtime": stat[1]}
        result.sizes[path] = stat[0]
    for path in sorted(set(old) - set(new)):
        target = out / path
        if _inside(out, target) and target.is_file():
            target.unlink()
            result.removed.append(path)
            _prune(out, target.parent)
    _write(out / MANIFEST, json.dumps({"version": MANIFEST_VERSION, "pages": new}, sort_keys=True).encode())
    return result


def _read_manifest(out: Path) -> dict[str, dict]:
    try:
        doc = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    pages = doc.get("pages") if isinstance(doc, dict) and doc.get("version") == MANIFEST_VERSION else None
    if not isinstance(pages, dict):
        return {}
    return {p: e for p, e in pages.items() if isinstance(p, str) and isinstance(e, dict) and _safe_rel(p)}


def _safe_rel(path: str) -> bool:
    """A manifest path we could have written: relative, no '..', no absolute part."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and all(p not in ("", ".", "..") for p in parts)


def _inside(out: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(out.resolve())
    except ValueError:
        return False
    return True


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _write(target: Path, data: bytes) -> None:
    """Write atomically: a reader (or a killed run) sees the old page or the new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(out: Path, directory: Path) -> None:
    """Remove directories a removed page leaves empty, up to ``out``."""
    while directory != out and _inside(out, directory):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
