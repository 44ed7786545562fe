"""The machine-local cache of built models (the embedded toy base, dequantized GGUF files, LoRA
versions merged into their base).

``$GITOPS_CACHE_DIR``, else ``~/.cache/gitops``. Entries are built in a temporary directory and
renamed into place under an exclusive lock, so a crash never leaves half an entry and two processes
never build the same one twice.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
