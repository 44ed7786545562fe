"""DVC, through its Python API, imported only when a command needs it.

Registry commands never import this module's dependencies: ``dvc`` is imported inside each function.
Reading a ``.dvc`` pointer (its md5) needs no DVC at all and lives in :func:`read_pointer`.
"""

from __future__ import annotations

import contextlib
import io
import os
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.errors import DvcError, GitopsError

DEFAULT_REMOTE = "storage"


@contextlib.contextmanager
def _repo(root: Path) -> Iterator[Any]:
    """An open ``dvc.repo.Repo``; DVC failures become :class:`DvcError` with DVC's own reason."""
    try:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
    except ImportError:  # pragma: no cover - dvc is a core dependency
        raise DvcError("DVC is not installed (pip install dvc)") from None
    logging.getLogger("dvc").setLevel(logging.ERROR)
    try:
        # DVC resolves stage paths against the current directory: work from the repo root so
        # callers (tests, `gitops -C DIR`, other processes' libraries) need not chdir themselves.
        with _chdir(root), Repo(str(root)) as repo:
            yield repo
    except DvcException as exc:
        raise DvcError(f"dvc: {exc}") from None
    except GitopsError:
        raise


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def init(root: Path, remote_url: str | None = None) -> None:
    """``dvc init`` in a git repo, optionally with a default remote."""
    try:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
    except ImportError:  # pragma: no cover
        raise DvcError("DVC is not installed (pip install dvc)") from None
    logging.getLogger("dvc").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            Repo.init(str(root), no_scm=False, force=False).close()
    except DvcException as exc:
        raise DvcError(f"dvc init failed: {exc}") from None
    with _repo(root) as repo:
        with repo.config.edit() as conf:
            conf["core"]["autostage"] = False
            if remote_url:
                conf["remote"][DEFAULT_REMOTE] = {"url": remote_url}
                conf["core"]["remote"] = DEFAULT_REMOTE


def add(root: Path, target: str) -> str:
    """``dvc add target``; return the md5 recorded in the new ``.dvc`` pointer."""
    with _repo(root) as repo, contextlib.redirect_stdout(io.StringIO()):
        repo.add([target])
    return read_pointer(root / f"{target}.dvc")["md5"]


def push(root: Path, targets: list[str] | None = None) -> int:
    """Upload the cache of ``targets`` (default: everything) to the default remote."""
    with _repo(root) as repo, contextlib.redirect_stdout(io.StringIO()):
        return int(repo.push(targets=targets) or 0)


def pull(root: Path, targets: list[str] | None = None) -> None:
    """Fetch and check out ``targets`` (``.dvc`` files or tracked paths) from the remote."""
    with _repo(root) as repo, contextlib.redirect_stdout(io.StringIO()):
        repo.pull(targets=targets)


def checkout(root: Path, targets: list[str] | None = None) -> None:
    with _repo(root) as repo, contextlib.redirect_stdout(io.StringIO()):
        repo.checkout(targets=targets, force=True)


def changed(root: Path, targets: list[str]) -> list[str]:
    """Tracked paths among ``targets`` whose files differ from their ``.dvc`` pointer (``dvc status``)."""
    with _repo(root) as repo, contextlib.redirect_stdout(io.StringIO()):
        status = repo.status(targets=targets)
    out = []
    for entries in status.values():
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict):
                for outs in entry.values():
                    if isinstance(outs, dict):
                        out += [path for path, state in outs.items() if state != "unchanged"]
    return sorted(set(out))


def missing_on_remote(root: Path, targets: list[str] | None = None) -> list[str]:
    """Paths whose data the default remote lacks (``dvc status --cloud``)."""
    with _repo(root) as repo:
        status = repo.status(targets=targets, cloud=True)
    return sorted(name for name, state in status.items() if state not in ("deleted",))


def read_pointer(path: Path) -> dict[str, Any]:
    """The single output of a ``.dvc`` file: ``{'md5': ..., 'path': ..., 'size': ..., 'nfiles': ...}``."""
    data = yamlio.load_file(path)
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict) or "md5" not in outs[0]:
        raise DvcError(f"{path}: not a DVC pointer with one output and an md5")
    return dict(outs[0])


def remote_url(root: Path) -> str | None:
    """The default remote's URL as written in ``.dvc/config`` (read without importing DVC)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
    name = cfg.get("core", "remote", fallback=None)
    if not name:
        return None
    return cfg.get(f"'remote \"{name}\"'", "url", fallback=None)
