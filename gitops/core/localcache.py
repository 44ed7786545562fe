"""The machine-local cache of built models (the embedded toy base, dequantized GGUF files, LoRA
versions merged into their base).

``$GITOPS_CACHE_DIR``, else ``~/.cache/gitops``. Entries are built in a temporary directory and
renamed into place under an exclusive lock, so a crash never leaves half an entry and two processes
never build the same one twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops.adapters.dvcdir import file_md5


def cache_root(cache_dir: Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$GITOPS_CACHE_DIR``, else ``~/.cache/gitops``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("GITOPS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "gitops"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX flock; no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: builds are still atomic, just possibly duplicated
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_once(root: Path, name: str, verified: Callable[[Path], bool], build: Callable[[Path], None]) -> bool:
    """Make the entry ``root/name`` unless ``verified(entry)`` says it is there already: ``build``
    fills a temporary directory beside it, which is renamed into place under the entry's lock (an
    entry that exists but did not verify is replaced). True when this call built it."""
    target = root / name
    if verified(target):
        return False
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f"{name}.lock"):
        if verified(target):  # another process built it while we waited
            return False
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            build(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            if target.exists():  # unfinished (a crash), or failed verification: never used, replaced
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def manifest_matches(target: Path, marker: str, files: object) -> bool:
    """Whether ``target`` holds exactly the files ``files`` (name -> md5) lists, besides ``marker``,
    each with that md5 (every file is hashed: a cache entry is not trusted on its name)."""
    if not isinstance(files, dict) or not files:
        return False
    present = {p.name for p in target.iterdir() if p.name != marker}
    return present == set(files) and all(file_md5(target / name) == md5 for name, md5 in files.items())
