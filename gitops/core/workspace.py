"""The Workspace: one repository's state, built once per command and passed to every verb.

dvc's ``Repo`` and gto's ``GitRegistry`` are the examples. A Workspace holds the root, the git and
DVC adapters bound to it (``.dvc/config`` read once), the settings (``gitops.yaml``, read once,
on first use), a memoised registry reader with the one content cache behind it, and the one push
sequence. Verbs take it as their first argument instead of a root they would re-derive state from;
a verb that commits holds :meth:`Workspace.writing` (the write lock; what a killed verb left is
settled first) and changes files inside :meth:`Workspace.transaction` (the write-ahead journal of
:mod:`gitops.core.journal`), which forgets the memo when it is done.

    ws = Workspace.open(".")
    ws.registry().resolve("review-autocomplete@production")
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gitops import yamlio
from gitops.adapters import git as git_adapter
from gitops.adapters.dvc import Dvc
from gitops.adapters.git import Git
from gitops.core import journal, layout, reader, refs
from gitops.core.cache import ContentCache, digest
from gitops.core.reader import Registry
from gitops.core.schema import Dataset
from gitops.errors import DataError, DiskFull, GitopsError, NotFoundError, RegistryError, RepoStateError, disk_full
from gitops.validation import Problems

if TYPE_CHECKING:
    from gitops.core.settings import Settings


class Workspace:
    """A GitOps repository as one command sees it (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.git = Git(self.root)
        self.dvc = Dvc(self.root)
        self._settings: Settings | None = None
        self._cache: ContentCache | None = None
        self._registry: Registry | None = None
        self._at: dict[str, Registry] = {}
        self._lock: journal.WriteLock | None = None
        self._entry: journal.Journal | None = None
        self.recovered: list[str] = []  # what settling a killed verb's leftovers did, in sentences

    @classmethod
    def open(cls, path: Path | str = ".") -> Workspace:
        """The Workspace of the git work tree containing ``path``."""
        return cls(git_adapter.find_root(path))

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # --- local state ------------------------------------------------------------------------------

    def state_path(self, *parts: str) -> Path:
        """A file of gitops' local state (journal, lock, caches): inside the git dir, never committed."""
        return self.git.git_dir.joinpath("gitops", *parts)

    @contextlib.contextmanager
    def scratch(self, verb: str) -> Iterator[Path]:
        """A temporary directory for ``verb`` under the git directory (the repository's file system,
        never the system's /tmp), removed when the block ends. Its name carries this process's id: a
        killed process cannot remove it, so each new one first removes those whose process is gone."""
        root = self.state_path("tmp")
        root.mkdir(parents=True, exist_ok=True)
        for old in root.iterdir():
            if not _owner_alive(old.name):
                shutil.rmtree(old, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=f"{verb}-{os.getpid()}-", dir=root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @property
    def cache(self) -> ContentCache:
        """The one content cache of parsed registry files (see :mod:`gitops.core.cache`)."""
        if self._cache is None:
            has_git_dir = (self.root / ".git").exists()
            self._cache = ContentCache(self.state_path("cache") if has_git_dir else None)
        return self._cache

    @property
    def settings(self) -> Settings:
        """``gitops.yaml``, parsed on first use (a problem in it raises RegistryError)."""
        if self._settings is None:
            from gitops.core import settings  # late: most commands never read gitops.yaml

            self._settings = settings.read(self.root)
        return self._settings

    def settings_at(self, rev: str) -> Settings:
        """``gitops.yaml`` as committed at git ``rev`` (none there: the defaults); a problem in it
        raises RegistryError. What a pull request's own checkout must not decide is read here from
        its base commit (the judge endpoint, which receives the holdout's text)."""
        from gitops.core import settings  # late, as above

        src = f"{settings.SETTINGS_FILE} at {rev}"
        text = self.git.read_blobs([f"{self.git.resolve(rev)}:{settings.SETTINGS_FILE}"]).popitem()[1]
        doc = yamlio.loads(text, src) if text is not None else None
        problems = Problems()
        found = settings.parse(doc, src, problems)
        if problems:
            raise RegistryError(problems[0])
        return found

    def require_dvc_config_of(self, rev: str) -> None:
        """Refuse unless the DVC configuration this work tree would use is the one committed at
        ``rev`` (a pull request's base). A pull request's checkout must not send the runner's DVC
        credentials (its environment, ``.dvc/config.local``) to a remote the pull request chose:
        an evaluation reads weights and data only through the base commit's remotes, and a change
        to them is evaluated once merged (it needs an admin's approval)."""
        from gitops.adapters.dvc import CONFIG_FILE, CONFIG_LOCAL, config_values

        if self.git.ls_files([CONFIG_LOCAL]):
            raise RepoStateError(f"{CONFIG_LOCAL} is committed in this checkout; DVC would take its remotes and "
                                 "credentials from the pull request, so nothing is pulled (remove it from git: it "
                                 "holds a machine's own settings)")
        commit = self.git.resolve(rev)
        trusted = config_values(self.git.read_blobs([f"{commit}:{CONFIG_FILE}"])[f"{commit}:{CONFIG_FILE}"])
        path = self.root / CONFIG_FILE
        here = None if path.is_symlink() or path.is_dir() or (path.is_file() and path.stat().st_size > 1 << 20) \
            else config_values(path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None)
        if here is not None and here == trusted:
            return
        keys = _differing(here or {}, trusted or {})
        what = f" ({', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''})" if keys else ""
        raise RepoStateError(
            f"{CONFIG_FILE} differs from the one at {rev}{what}: an evaluation of a pull request (--baseline-rev) "
            "pulls only through the base commit's DVC remotes, so the runner's credentials never reach a remote "
            "the pull request chose; merge the DVC configuration change on its own first (an admin approves it)")

    # --- reading the registry ---------------------------------------------------------------------

    def registry(self, *, strict: bool = True) -> Registry:
        """The registry in the work tree, parsed once per Workspace (until a writer changes it).

        ``strict`` raises the first problem; ``strict=False`` leaves every problem in
        ``Registry.problems`` (what ``gitops check`` reports)."""
        if self._registry is None:
            self._registry = reader.parse_texts(reader.worktree_texts(self.root), self.cache)
        if strict:
            self._registry.raise_problems()
        return self._registry

    def registry_at(self, rev: str, *, strict: bool = True) -> Registry:
        """The registry as committed at git ``rev`` (parsed once per commit)."""
        commit = self.git.resolve(rev)
        if commit not in self._at:
            self._at[commit] = reader.parse_texts(reader.ref_texts(self.git, commit), self.cache, current=False)
        registry = self._at[commit]
        if strict:
            registry.raise_problems()
        return registry

    def dataset(self, name: str) -> Dataset:
        """One data set from the work tree, fully validated; only its own file is read (a copy the
        caller may change)."""
        return self.read_dataset(name)[0]

    def read_dataset(self, name: str) -> tuple[Dataset, str]:
        """:meth:`dataset`, and the digest of the text it was read from (a stamp for what follows it)."""
        rel = self._dataset_rel(name)
        path = self.root / rel
        if not path.is_file():
            raise reader.dataset_not_found(name)
        reader.require_plain_file(path, rel)
        text = path.read_text(encoding="utf-8")
        return reader.read_dataset_text(rel, text, name, self.cache), digest(text)

    def dataset_at(self, name: str, rev: str) -> Dataset:
        """The data set as committed at git ``rev`` (only its own file is read and validated)."""
        rel = self._dataset_rel(name)
        commit = self.git.resolve(rev)
        text = self.git.read_blobs([f"{commit}:{rel}"])[f"{commit}:{rel}"]
        if text is None:
            raise NotFoundError(f"data set '{name}' does not exist at {rev} ({rel} is not in that commit)")
        return reader.read_dataset_text(rel, text, name, self.cache, current=False)

    @staticmethod
    def _dataset_rel(name: str) -> str:
        if problem := refs.name_problem(name, "data set"):
            raise DataError(problem)
        return layout.dataset_file(name)

    # --- writing ----------------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop what was read: the next read sees the files as they are now."""
        self._registry = None
        self._settings = None

    @contextlib.contextmanager
    def writing(self, verb: str) -> Iterator[str | None]:
        """Hold the write lock for one committing ``verb`` ("register", "ingest", ...): one writer per
        work tree, refused at once while another runs. Taking it first settles what a killed verb
        left (its journal, stale git locks); yields "rolled back"/"rolled forward", or None. A verb
        called inside another's block (train calls register) shares the lock."""
        if self._lock is not None:
            yield None
            return
        try:
            self._lock = journal.WriteLock.acquire(self.state_path(journal.LOCK), self.root, verb)
        except OSError as exc:
            if disk_full(exc):
                raise DiskFull(verb, exc) from None
            raise
        try:
            settled = journal.recover(self.git, self.state_path(journal.JOURNAL))
            if settled:
                self.forget()
                self.recovered.append(f"an interrupted {settled[0]} was found and {settled[1]}")
            yield settled[1] if settled else None
        finally:
            lock, self._lock = self._lock, None
            lock.release()

    @contextlib.contextmanager
    def transaction(self, tracked: list[str], created: list[Path] | None = None, what: str = "change"
                    ) -> Iterator[None]:
        """Change the files ``tracked`` (paths relative to the root; clean or untracked) and create
        ``created``, all or nothing: the journal is written before the first change, so an error or
        Ctrl-C here, or a SIGKILL anywhere, ends with the files as HEAD has them, or with the commit
        :meth:`commit` made. ``what`` names the change for the user. Either way the memo is forgotten."""
        with self.writing(what):
            path = self.state_path(journal.JOURNAL)
            rels = [p.relative_to(self.root).as_posix() for p in created or []]
            self._entry = journal.begin(self.git, path, what, tracked, rels)
            try:
                yield
                if self._entry is not None:  # no commit (alias set --no-commit): what was written stays
                    journal.clear(path)
            except (Exception, KeyboardInterrupt) as exc:
                undone = True
                if self._entry is not None:  # not committed yet: nothing of it may stay
                    try:
                        journal.undo(self.git, path, self._entry)
                    except (GitopsError, OSError):  # cannot settle now (a full disk?): the next command will
                        undone = False
                if disk_full(exc) and not isinstance(exc, GitopsError):
                    raise DiskFull(what, exc if isinstance(exc, OSError) else OSError(errno.ENOSPC, str(exc)),
                                   undone) from None
                raise
            finally:
                self._entry = None
                self.forget()

    def commit(self, paths: list[str], message: str) -> str:
        """Commit exactly ``paths`` (new ones are staged first); the new commit id. Inside a
        transaction the journal is sealed first and dropped once the commit exists. The settings
        memo is dropped: a committed ``gitops.yaml`` is what this Workspace reads next."""
        self._settings = None
        entry = self._entry
        if entry is None:
            self.git.add(paths)
            sha = self.git.commit(message, paths=paths)
            self.git.pack_loose()   # git's own auto gc is off in gitops' commands: bounded packing instead
            return sha
        # 'git commit -- paths' takes tracked files from the work tree itself (staging a grown data
        # set file first would hash it twice); only new files need adding, and vanished new ones dropping.
        paths = [p for p in paths if p in entry.tracked or (self.root / p).exists()]
        path = self.state_path(journal.JOURNAL)
        journal.seal(self.git, path, entry, paths)
        self.git.add([p for p in paths if p not in entry.tracked])
        sha = self.git.commit(message, paths=paths)
        journal.clear(path)
        self._entry = None
        self.git.pack_loose()   # git's own auto gc is off in gitops' commands: bounded packing instead
        return sha

    # --- pushing ----------------------------------------------------------------------------------

    def check_push(self, what: str = "--push") -> None:
        """Refuse a ``--push`` (or ``--pr``) that cannot happen, before anything is changed: git has
        no ``origin``; the DVC remote is not configured, its plugin is missing, or (a cloud remote)
        it refuses the credentials or its bucket does not exist."""
        if "origin" not in self.git.remotes():
            raise RepoStateError(f"cannot {what}: git has no remote 'origin' (git remote add origin URL)")
        if problem := self.dvc.remote_problem():
            raise RepoStateError(f"cannot {what}: {problem}")

    def push(self, dvc_targets: list[str], what: str) -> None:
        """The one push sequence: DVC data first (so the commit never names data the remote lacks),
        then the current branch to ``origin``. ``what`` says what was committed, for the error."""
        try:
            self.dvc.push(dvc_targets)
            self.git.push("origin", "HEAD")
        except GitopsError as exc:
            raise type(exc)(f"{what} and committed locally, but pushing failed: {exc}") from None


def _differing(a: dict[str, dict[str, str]], b: dict[str, dict[str, str]]) -> list[str]:
    """``section.option`` names whose values differ between two parsed configs (never the values:
    a URL may carry a token)."""
    names = {(s, k) for conf in (a, b) for s in conf for k in conf[s]}
    return sorted(f"{s}.{k}" for s, k in names if a.get(s, {}).get(k) != b.get(s, {}).get(k))


def _owner_alive(name: str) -> bool:
    """Whether the process a scratch directory ``VERB-PID-XXXX`` names still runs (a name that
    names none is kept: it is not ours to remove)."""
    parts = name.split("-")
    if len(parts) < 3 or not parts[-2].isdigit():
        return True
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
