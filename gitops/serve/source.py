"""Where the server gets a model from: the one seam between serving and the registry.

The server knows a reference (``review-autocomplete@production``) and asks a :class:`ModelSource`
which exact version that is and where its verified files lie (``fetch``). The registry-backed source (read
the alias at a commit, ``dvc pull``, check the md5) is :class:`gitops.serve.repo_source.RepoSource`;
:class:`DirSource` maps references to local directories for tests and benchmarks. ``fetch`` may be slow (it may
pull weights) and may raise: the server calls it off the request path and keeps the old model
when it fails.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gitops.adapters.dvcdir import dir_md5
from gitops.core.refs import Ref
from gitops.errors import ConfigError, IntegrityError, NotFoundError

if TYPE_CHECKING:
    from gitops.predict.prompter import Prompter

SERVABLE_FORMATS = ("ct2", "hf", "peft-lora")


@dataclass(frozen=True)
class Target:
    """What a repository-backed server loads: version ``ref`` as the registry records it at
    ``commit`` (the followed alias, read once at that commit). It travels unchanged from whoever
    decided it (start-up, the deploy hook, ``--follow``) to the swap, so what loads is what was checked."""

    ref: Ref
    commit: str

    def __str__(self) -> str:
        return f"{self.ref} at {self.commit[:12]}"


@dataclass(frozen=True)
class HeadParts:
    """What a head version serves with (:mod:`gitops.serve.headed`), loaded off the request path:
    the row renderer (a :class:`~gitops.predict.prompter.Prompter` without instruction or examples),
    the head (``gitops.ml.classhead.Head``) and its description (``HeadSpec``)."""

    prompter: Prompter
    head: Any
    spec: Any


@dataclass(frozen=True)
class Resolved:
    """One servable version: what was asked (``ref``), what it is (``version_label`` such as
    ``review-autocomplete@v7`` and the DVC ``md5`` of its files), where its files are and their
    format (``ct2`` runs on CTranslate2, ``hf``/``peft-lora`` on transformers; a LoRA adapter is
    merged into ``base_dir``, default the base its adapter config records). ``commit`` is the
    registry commit the reference was resolved at, when a repository was asked.

    A prompt version (format ``prompt``: no weights of its own) resolves to its pinned base's files
    (``path``, ``fmt``; ``base`` names that version) with ``prompt`` set: the
    :class:`~gitops.predict.prompter.Prompter` (renderer and retriever, built here, off the request
    path) that turns each request's row into the text the base is given."""

    ref: str | Target
    version_label: str
    md5: str
    path: Path
    fmt: str
    base_dir: Path | None = None
    commit: str | None = None
    prompt: Prompter | None = None
    base: str | None = None
    head: HeadParts | None = None

    @property
    def format(self) -> str:
        """The version's own format (``prompt``, ``head``; else what the engine runs)."""
        return "head" if self.head is not None else "prompt" if self.prompt is not None else self.fmt

    def __post_init__(self) -> None:
        if self.fmt not in SERVABLE_FORMATS:
            raise ConfigError(f"{self.version_label} has format '{self.fmt}'; the server runs "
                              f"{', '.join(SERVABLE_FORMATS)}.")


class ModelSource(Protocol):
    """Turns a reference into a verified version on disk."""

    def fetch(self, ref: str | Target) -> Resolved:
        """The version ``ref`` names now (a :class:`Target`: that version at that commit), its
        files present and verified; raises a
        :class:`~gitops.errors.GitopsError` (e.g. :class:`IntegrityError`) when it cannot."""
        ...


def model_name(ref: str) -> str:
    """``review-autocomplete`` of ``review-autocomplete@production``."""
    return ref.split("@", 1)[0]


class DirSource:
    """A :class:`ModelSource` over local directories: ``ref -> Resolved``, movable like an alias.

    Each entry records the md5 its directory had when it was added; ``fetch`` recomputes it and
    raises :class:`IntegrityError` when the files changed since, as the registry source does
    against the md5 the registry records.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Resolved] = {}
        self._lock = threading.Lock()

    def add(self, label: str, path: Path, fmt: str, *, md5: str | None = None,
            base_dir: Path | None = None) -> Resolved:
        """Register version ``label`` (e.g. ``toy@v2``) at ``path``; also resolvable as ``label``."""
        path = Path(path)
        if not path.is_dir():
            raise NotFoundError(f"Model directory {path} does not exist.")
        entry = Resolved(label, label, md5 or dir_md5(path), path, fmt, base_dir)
        with self._lock:
            self._entries[label] = entry
        return entry

    def point(self, ref: str, label: str) -> None:
        """Make ``ref`` (an alias such as ``toy@production``) name the version ``label``."""
        with self._lock:
            if label not in self._entries:
                raise NotFoundError(f"No version {label} was added to this source.")
            self._entries[ref] = self._entries[label]

    def fetch(self, ref: str | Target) -> Resolved:
        with self._lock:
            entry = self._entries.get(ref if isinstance(ref, str) else str(ref.ref))
        if entry is None:
            raise NotFoundError(f"{ref} names no version in this source.")
        if not entry.path.is_dir():
            raise NotFoundError(f"{entry.version_label}: its directory {entry.path} is gone.")
        actual = dir_md5(entry.path)
        if actual != entry.md5:
            raise IntegrityError(f"{entry.version_label}: the files in {entry.path} have md5 {actual}, "
                                 f"not the recorded {entry.md5}; refusing to load them")
        return Resolved(ref, entry.version_label, entry.md5, entry.path, entry.fmt, entry.base_dir)
