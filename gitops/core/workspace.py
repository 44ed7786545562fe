"""The Workspace: one repository's state, built once per command and passed to every verb.

dvc's ``Repo`` and gto's ``GitRegistry`` are the examples. A Workspace holds the root, the git and
DVC adapters bound to it (``.dvc/config`` read once), the settings (``gitops.yaml``, read once,
on first use), a memoised registry reader with the one content cache behind it, and the one push
sequence. Verbs take it as their first argument instead of a root they would re-derive state from;
writers go through :meth:`Workspace.transaction`, which forgets the memo when they are done.

    ws = Workspace.open(".")
    ws.registry().resolve("review-autocomplete@production")
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gitops.adapters import git as git_adapter
from gitops.adapters.dvc import Dvc
from gitops.adapters.git import Git
from gitops.core import layout, reader, refs
from gitops.core.cache import ContentCache, digest
from gitops.core.reader import Registry
from gitops.core.schema import Dataset
from gitops.errors import DataError, GitopsError, NotFoundError, RepoStateError

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
    def transaction(self, tracked: list[str], created: list[Path] | None = None) -> Iterator[None]:
        """Change files: on any failure put ``tracked`` paths back as HEAD has them and delete the
        ``created`` paths; either way the memo is forgotten afterwards."""
        try:
            yield
        except BaseException:
            for path in created or []:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            self.git.restore(tracked)
            raise
        finally:
            self.forget()

    def commit(self, paths: list[str], message: str) -> str:
        """Stage and commit exactly ``paths``; the new commit id."""
        self.git.add(paths)
        return self.git.commit(message, paths=paths)

    # --- pushing ----------------------------------------------------------------------------------

    def check_push(self) -> None:
        """Refuse a ``--push`` that cannot happen, before anything is changed."""
        if self.dvc.remote_url() is None:
            raise RepoStateError(f"cannot --push: {self.root / '.dvc/config'} names no default DVC remote "
                                 "(dvc remote add -d storage URL)")
        if "origin" not in self.git.remotes():
            raise RepoStateError("cannot --push: git has no remote 'origin' (git remote add origin URL)")

    def push(self, dvc_targets: list[str], what: str) -> None:
        """The one push sequence: DVC data first (so the commit never names data the remote lacks),
        then the current branch to ``origin``. ``what`` says what was committed, for the error."""
        try:
            self.dvc.push(dvc_targets)
            self.git.push("origin", "HEAD")
        except GitopsError as exc:
            raise type(exc)(f"{what} and committed locally, but pushing failed: {exc}") from None
