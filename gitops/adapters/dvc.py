"""DVC: the one border to it. Its Python API is imported only inside the calls that need it.

Registry commands never import DVC: reading a ``.dvc`` pointer (:func:`read_pointer`) and
``.dvc/config`` (:class:`DvcConfig`, parsed once per :class:`Dvc`, never interpolating ``%`` so
``s3://bucket/a%20b`` reads as written) need no DVC at all. DVC failures become :class:`DvcError`
with DVC's own reason.

Besides the usual verbs (add, push, pull, status) this module keeps a *directory* pointer up to
date incrementally (:meth:`Dvc.add_to_dir`). ``dvc add data`` re-walks the whole directory on
every call (stat, state db, cache check per file: ~1.4 s at 2,000 files, growing), while an ingest
only ever adds immutable files. So the new tree is the old ``.dir`` manifest plus the new entries:
the new files are hashed and cached, the manifest merged and stored, and the pointer's output
updated in place (a user's keys such as ``remote``, ``push``, ``desc`` and ``meta`` are kept). The
result is byte for byte what ``dvc add`` records (a test compares them). It works on DVC 3's cache
layout (``files/md5/ab/cdef...``), hence ``dvc<4`` in the requirements. Files are linked into the
cache the way ``cache.type`` says (hardlink, symlink; reflink and copy leave a copy); a
configuration it cannot honour goes through ``dvc add`` instead. :func:`init` writes a
``cache.type`` that links where the file system allows (:func:`link_types`), so a registered
version's weights are on disk once, not once in the workspace and again in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops import jsonio, yamlio
from gitops.adapters import dvc_remote
from gitops.adapters.dvcdir import manifest_entries, parsed_items, plain_items
from gitops.errors import DvcError, GitopsError

DEFAULT_REMOTE = "storage"
MAX_CONFIG_BYTES = 1024 * 1024  # .dvc/config is a few lines
_OUT_KEYS = ("md5", "size", "nfiles", "hash", "path")  # DVC 3 writes a directory output's keys in this order


def config_files(root: Path) -> list[Path]:
    """``.dvc/config`` and ``config.local``, checked before DVC or gitops reads them: both echo a
    line they cannot parse, so a file that links out of the repository (to ``~/.aws/credentials``),
    a device or a huge file is refused unread."""
    files = [root / ".dvc" / "config", root / ".dvc" / "config.local"]
    for path in files:
        if (path.exists() or path.is_symlink()) and (jsonio.foreign_link(path) or not path.is_file()
                                                     or path.stat().st_size > MAX_CONFIG_BYTES):
            raise DvcError(f"{path}: not a DVC config file of the repository (a link outside it, a device or "
                           f"over {MAX_CONFIG_BYTES // 1024} KiB); refusing to read it")
    return files


@contextlib.contextmanager
def _repo(root: Path) -> Iterator[Any]:
    """An open ``dvc.repo.Repo``; DVC failures become :class:`DvcError` with DVC's own reason."""
    import logging

    config_files(root)
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
    except ImportError as exc:  # a remote whose plugin is missing: "s3 is supported, but requires 'dvc-s3'"
        problem = dvc_remote.plugin_problem(DvcConfig(root).remote_url)
        if problem is None:
            raise
        raise DvcError(problem) from exc


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def check_remote(url: str, options: dict[str, str] | None = None) -> None:
    """Refuse, before anything is made, a remote DVC could not use here: a scheme whose plugin is
    missing (one sentence naming the extra to install) or options DVC does not know for it."""
    if problem := dvc_remote.plugin_problem(url):
        raise DvcError(problem)
    from dvc.config import Config
    from dvc.exceptions import DvcException

    try:
        Config.validate({"remote": {DEFAULT_REMOTE: {"url": url, **(options or {})}}})
    except DvcException as exc:
        raise DvcError(f"--remote-option: DVC refuses these settings for {url} "
                       f"({str(exc).split(': ', 1)[-1]})") from None


def init(root: Path, remote_url: str | None = None, options: dict[str, str] | None = None,
         relative: bool = False) -> list[str]:
    """``dvc init`` in a git repo, optionally with a default remote and its ``options``; the names of
    the options written to ``.dvc/config.local`` (secrets, never committed). ``relative``: the local
    remote (an absolute path here) is recorded relative to ``.dvc/``, as DVC stores relative paths,
    so a clone finds the remote beside itself instead of a path on this machine."""
    import logging

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
    options = dict(options or {})
    secrets = {k: v for k, v in options.items() if k in dvc_remote.SECRET_OPTIONS}
    with _repo(root) as repo:
        with repo.config.edit() as conf:
            conf["core"]["autostage"] = False
            conf["cache"]["type"] = link_types(root / ".dvc")
            if remote_url:
                conf["remote"][DEFAULT_REMOTE] = {"url": _config_url(remote_url, relative),
                                                  **{k: v for k, v in options.items() if k not in secrets}}
                conf["core"]["remote"] = DEFAULT_REMOTE
        if remote_url and secrets:
            with repo.config.edit("local") as conf:
                conf["remote"][DEFAULT_REMOTE] = secrets
    return sorted(secrets)


def _config_url(url: str, relative: bool) -> str:
    """What ``.dvc/config`` records for ``url``: as given, or (``relative``, a local path) a DVC
    ``RelPath``, which DVC writes relative to ``.dvc/``."""
    if not relative or "://" in url:
        return url
    from dvc.config_schema import RelPath

    return RelPath(os.path.abspath(url))


def link_types(directory: Path) -> str:
    """The ``cache.type`` for a cache in ``directory``: the first link kind that works there, then
    the fallbacks. ``reflink,copy`` where the file system clones (btrfs, XFS, APFS): safe and free;
    else ``hardlink,symlink,copy``. DVC commits by hardlink only when ``hardlink`` comes first, and
    treats a plain file as already linked whenever ``reflink`` is listed, so on ext4 its default
    ``reflink,copy`` (and even ``reflink,hardlink,symlink,copy``) stores every weight file twice.
    A hardlinked file is the cache object itself: DVC makes it read-only, and gitops writes new
    versions into fresh directories and re-hashes every file it loads."""
    probe = Path(directory) / f".gitops-link-probe-{os.getpid()}"
    probe.mkdir(parents=True, exist_ok=True)
    try:
        src = probe / "a"
        src.write_bytes(b"gitops")
        if _reflinks(src, probe / "b"):
            return "reflink,copy"
        for kind, make in (("hardlink", os.link), ("symlink", os.symlink)):
            try:
                make(src, probe / kind)
            except OSError:
                continue
            return "hardlink,symlink,copy" if kind == "hardlink" else "symlink,copy"
        return "copy"
    finally:
        import shutil

        shutil.rmtree(probe, ignore_errors=True)


def _reflinks(src: Path, dst: Path) -> bool:
    """Whether ``src`` can be cloned (FICLONE) to ``dst`` on this file system (Linux only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no reflinks
        return False
    ficlone = 0x40049409
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), ficlone, fin.fileno())
        return True
    except OSError:
        return False


def read_pointer(path: Path) -> dict[str, Any]:
    """The single output of a ``.dvc`` file: ``{'md5': ..., 'path': ..., 'size': ..., 'nfiles': ...}``."""
    data = yamlio.load_file(path)
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict) or "md5" not in outs[0]:
        raise DvcError(f"{path}: not a DVC pointer with one output and an md5")
    return dict(outs[0])


CONFIG_FILE = ".dvc/config"
CONFIG_LOCAL = ".dvc/config.local"


def config_values(text: str | None) -> dict[str, dict[str, str]] | None:
    """``.dvc/config`` text as ``{section: {option: value}}`` (what DVC acts on: comments and layout
    do not count); {} for no file, None for text that is not a DVC config."""
    import configparser

    if text is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return {section.strip(): {k.strip(): v.strip() for k, v in parser.items(section)} for section in parser.sections()}


class DvcConfig:
    """What gitops needs from ``.dvc/config`` (+ ``config.local``), read without DVC and without
    ``%`` interpolation (DVC's own format has none: a URL like ``s3://b/a%20b`` is literal)."""

    def __init__(self, root: Path) -> None:
        import configparser

        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(config_files(root), encoding="utf-8")
        except configparser.Error as exc:
            raise DvcError(f"{root / '.dvc' / 'config'}: not a readable DVC config ({exc})") from None
        self.root = root
        self.remote: str | None = parser.get("core", "remote", fallback=None) or None
        self.remote_url = (parser.get(f"'remote \"{self.remote}\"'", "url", fallback=None)
                           if self.remote else None)
        self.cache_dir = (root / ".dvc" / parser.get("cache", "dir", fallback="cache")).resolve()
        types = parser.get("cache", "type", fallback="reflink,copy").strip().strip('"\'')  # DVC quotes lists
        self.link_types = [t.strip() for t in types.split(",") if t.strip()] or ["reflink", "copy"]


class Dvc:
    """DVC bound to one repository (what a Workspace hands to verbs). ``config`` is read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._config: DvcConfig | None = None

    @property
    def config(self) -> DvcConfig:
        if self._config is None:
            self._config = DvcConfig(self.root)
        return self._config

    def configure_worktree(self, tree: Path) -> None:
        """Make the linked worktree ``tree`` of this repository use its DVC setup: its local
        settings (credentials), its cache (shared, so nothing is stored twice) and its remotes,
        relative URLs made absolute (``tree/.dvc/config.local``; see
        :func:`gitops.adapters.dvc_remote.link_worktree`). The one way a worktree is configured."""
        dvc_remote.link_worktree(self.root, Path(tree), self.config.cache_dir)

    def remote_url(self) -> str | None:
        """The default remote's URL as written in ``.dvc/config``."""
        return self.config.remote_url

    def remote_problem(self, *, probe: bool = True) -> str | None:
        """Why the default remote cannot be pushed to or pulled from, in one sentence, or None: no
        remote configured, its plugin missing, and (``probe``) a cloud remote asked once whether
        its bucket exists and it accepts the credentials."""
        url = self.remote_url()
        if url is None:
            return (f"{self.root / '.dvc' / 'config'} names no default DVC remote "
                    f"(dvc remote add -d {DEFAULT_REMOTE} URL)")
        if problem := dvc_remote.plugin_problem(url):
            return problem
        if not probe or dvc_remote.scheme_of(url) is None:
            return None
        try:
            with _repo(self.root) as repo:
                remote = repo.cloud.get_remote()
                return dvc_remote.probe(remote.fs, remote.path, url)
        except DvcError as exc:
            return str(exc)

    def add(self, target: str) -> str:
        """``dvc add target``; return the md5 recorded in the new ``.dvc`` pointer."""
        with _repo(self.root) as repo, contextlib.redirect_stdout(io.StringIO()):
            repo.add([target])
        return read_pointer(self.root / f"{target}.dvc")["md5"]

    def push(self, targets: list[str] | None = None) -> int:
        """Upload the cache of ``targets`` (default: everything) to the default remote."""
        with self._remote("push"), _repo(self.root) as repo, contextlib.redirect_stdout(io.StringIO()):
            return int(repo.push(targets=targets) or 0)

    def pull(self, targets: list[str] | None = None) -> None:
        """Fetch and check out ``targets`` (``.dvc`` files or tracked paths) from the remote."""
        with self._remote("pull"), _repo(self.root) as repo, contextlib.redirect_stdout(io.StringIO()):
            repo.pull(targets=targets)

    def _remote(self, action: str) -> contextlib.AbstractContextManager:
        """A failure of ``action`` on the remote (refused credentials, no bucket) as one sentence."""
        return dvc_remote.translated(self.remote_url(), f"dvc {action}")

    def checkout(self, targets: list[str] | None = None) -> None:
        with _repo(self.root) as repo, contextlib.redirect_stdout(io.StringIO()):
            repo.checkout(targets=targets, force=True)

    def changed(self, targets: list[str]) -> list[str]:
        """Tracked paths among ``targets`` whose files differ from their ``.dvc`` pointer (``dvc status``)."""
        with _repo(self.root) as repo, contextlib.redirect_stdout(io.StringIO()):
            status = repo.status(targets=targets)
        out = []
        for entries in status.values():
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict):
                    for outs in entry.values():
                        if isinstance(outs, dict):
                            out += [path for path, state in outs.items() if state != "unchanged"]
        return sorted(set(out))

    def missing_on_remote(self, targets: list[str] | None = None) -> list[str]:
        """Paths whose data the default remote lacks (``dvc status --cloud``)."""
        with self._remote("status"), _repo(self.root) as repo:
            status = repo.status(targets=targets, cloud=True)
        return sorted(name for name, state in status.items() if state not in ("deleted",))

    def read_bytes(self, paths: list[str], rev: str | None = None) -> list[bytes]:
        """The contents of DVC-tracked ``paths`` as of git ``rev``, from the cache or the remote."""
        from dvc.api import DVCFileSystem

        try:
            with self._remote("read"):
                fs = DVCFileSystem(str(self.root), rev=rev)
                return [fs.read_bytes(p) for p in paths]
        except DvcError:
            raise
        except Exception as exc:  # noqa: BLE001 - DVC raises many types (missing cache, unreachable remote, ...)
            raise DvcError(str(exc) or type(exc).__name__) from None

    # --- the incremental directory pointer ---------------------------------------------------------

    def object_path(self, md5: str) -> Path:
        """Where DVC 3 keeps the object with this md5 (``files/md5/ab/cdef...``)."""
        return self.config.cache_dir / "files" / "md5" / md5[:2] / md5[2:]

    def cached_object(self, md5: str) -> Path | None:
        """The local cache's object with this md5 (a file's or a ``.dir`` manifest's), if present."""
        path = self.object_path(md5)
        return path if path.is_file() else None

    def read_cached(self, md5: str, max_bytes: int) -> bytes | None:
        """The local cache's object with this md5 when it is there, at most ``max_bytes`` long and
        its bytes still hash to ``md5`` (``.dir`` suffix allowed); else None. Reads, never fetches."""
        plain = md5.removesuffix(".dir")
        if len(plain) != 32 or not all(c in "0123456789abcdef" for c in plain):
            return None
        path = self.cached_object(md5)
        try:
            if path is None or path.stat().st_size > max_bytes:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        return data if hashlib.md5(data).hexdigest() == plain else None

    def cached_dir_file(self, dir_md5: str, relpath: str, max_bytes: int) -> bytes | None:
        """One file of a cached directory (the ``.dir`` manifest ``dir_md5`` names), read as
        :meth:`read_cached` reads: None unless the manifest and the file are both in the local cache."""
        manifest = self.read_cached(dir_md5, 16 << 20) if dir_md5.endswith(".dir") else None
        entries = manifest_entries(manifest) if manifest is not None else None
        md5 = entries.get(relpath) if entries else None
        return self.read_cached(md5, max_bytes) if isinstance(md5, str) else None

    def drop_objects(self, md5s: list[str]) -> None:
        """Remove these objects from the local cache (a corrupted download), so the next pull
        fetches them again instead of trusting the bad copy under the good name."""
        for md5 in md5s:
            self.object_path(md5).unlink(missing_ok=True)

    def manifest_cached(self, pointer: str) -> bool:
        """Whether the ``.dir`` manifest that ``pointer`` names is in the local cache."""
        return self.object_path(read_pointer(self.root / pointer)["md5"]).is_file()

    def add_to_dir(self, pointer: str, target: str, rels: list[str]) -> str:
        """Track the new files ``rels`` (under directory ``target``) in ``pointer``; return its md5.

        The first time (no pointer yet) this is plain ``dvc add``, which also writes the ``/target``
        line of ``.gitignore``; after that see the module docstring."""
        pointer_path = self.root / pointer
        link = self._link_type()
        if not pointer_path.exists() or link is None:
            return self.add(str(self.root / target))  # absolute: DVC resolves targets against the cwd
        out = read_pointer(pointer_path)
        if not self.object_path(out["md5"]).is_file():  # e.g. a clone that never pulled: fetch the old tree
            self.pull([str(pointer_path)])
        old = self.object_path(out["md5"])
        if not old.is_file():
            raise DvcError(f"{pointer}: the manifest {out['md5']} is in neither the DVC cache nor the remote")
        added = {Path(rel).relative_to(target).as_posix(): self._cache_file(rel, link) for rel in rels}
        text = old.read_bytes().decode("utf-8", errors="replace")
        items = plain_items(text, out.get("nfiles"), added)
        size = int(out.get("size") or 0)
        if items is None:
            items, size = parsed_items(old, text, added, size)
        else:
            size += sum(n for _md5, n in added.values())
        manifest = ("[" + ", ".join(items) + "]").encode("utf-8")
        oid = hashlib.md5(manifest).hexdigest() + ".dir"
        self._store(oid, manifest)
        self._write_pointer(pointer_path, {"md5": oid, "size": size, "nfiles": len(items), "hash": "md5",
                                           "path": out.get("path", target)})
        return oid

    def _link_type(self) -> str | None:
        """How to put a new file into the cache: ``copy`` (also for reflink, whose result is a copy
        here), ``hardlink`` or ``symlink``; None: leave it to ``dvc add``."""
        first = self.config.link_types[0]
        if first in ("hardlink", "symlink", "copy"):
            return first
        if first == "reflink" and "copy" in self.config.link_types:
            return "copy"
        return None

    def _cache_file(self, rel: str, link: str) -> tuple[str, int]:
        """Hash ``rel``, store it in the cache (and link it back the way ``cache.type`` says)."""
        path = self.root / rel
        data = path.read_bytes()
        md5 = hashlib.md5(data).hexdigest()  # DVC 3 'md5' is the plain md5 of the bytes
        obj = self._store(md5, data)
        if link != "copy":
            tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
            tmp.unlink(missing_ok=True)
            try:
                os.link(obj, tmp) if link == "hardlink" else os.symlink(obj, tmp)
            except OSError as exc:
                raise DvcError(f"cannot {link} {rel} to the DVC cache ({exc.strerror}); set cache.type to copy "
                               "or fix the cache location") from None
            os.replace(tmp, path)
        return md5, len(data)

    def _store(self, md5: str, data: bytes) -> Path:
        """Put an object into the cache the way DVC does: atomically, then read-only."""
        target = self.object_path(md5)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        return target

    @staticmethod
    def _write_pointer(path: Path, new: dict[str, Any]) -> None:
        """Update the pointer's one output in place: DVC's keys first in DVC's order, then every
        other key of the output and of the file as the user left them."""
        doc = yamlio.plain(yamlio.load_file(path))
        old = doc["outs"][0]
        out = {**new, **{k: v for k, v in old.items() if k not in _OUT_KEYS}}
        doc["outs"] = [out]
        yamlio.write_atomic(path, yamlio.dumps(doc))
