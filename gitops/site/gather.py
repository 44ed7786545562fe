"""What the pages are made of, read once from git at one commit: the registry, every alias move,
the commits that registered each version and last changed each model and data set, and the
evaluation results documents found in the repository.

Read-only: everything comes through the Workspace (``ws.registry_at``, the git adapter, the DVC
adapter's local cache); nothing is written and nothing is fetched.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from gitops.adapters.git import LogEntry, TreeFile
from gitops.core import layout
from gitops.core.reader import Registry
from gitops.core.workspace import Workspace
from gitops.errors import GitopsError, RegistryError, RepoStateError, shown
from gitops.eval.results import EvalResults
from gitops.registry.audit import AliasEvent
from gitops.registry.history import histories

# Bounds on what the repository may hand the pages (a results document, a model card, a batch preview).
MAX_RESULTS_DOCS = 200
MAX_RESULTS_BYTES = 8 << 20
MAX_CARD_BYTES = 256 << 10
MAX_PREVIEW_BATCH_BYTES = 4 << 20
PREVIEW_BUDGET_BYTES = 64 << 20  # batch bytes hashed for previews in one run
RESULTS_NAME = re.compile(r"results[^/]*\.json", re.IGNORECASE)
GITHUB_REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True)
class Commit:
    """A commit as the pages show it: who, when, what."""

    sha: str
    author: str
    date: str  # ISO 8601 with the author's offset, as git gives it
    subject: str

    @classmethod
    def of(cls, entry: LogEntry) -> Commit:
        return cls(entry.commit, entry.author, entry.date, entry.subject)


@dataclass
class ResultsDoc:
    """One evaluation results document found in the repository."""

    path: str            # relative to the repository root
    slug: str            # its page: results/<slug>.html
    results: EvalResults
    committed: bool      # False: an untracked file of the work tree
    commit: Commit | None = None  # the newest commit changing it (committed ones)


@dataclass
class SiteInputs:
    """Everything the pages show, read at one commit."""

    commit: Commit
    rev: str
    registry: Registry
    events: dict[str, list[AliasEvent]]                 # model -> its alias moves, newest first
    registered: dict[tuple[str, str], Commit]           # (model or "dataset:NAME", version) -> the commit adding it
    last_change: dict[str, Commit]                      # "model:NAME" / "dataset:NAME" -> newest commit touching it
    results: list[ResultsDoc]
    github: str | None                                  # owner/name when gitops.yaml names one
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, version) -> bytes, from its pointer
    dvc_cache: bool = False                             # this clone has a DVC cache (model cards may be in it)
    warnings: list[str] = field(default_factory=list)


def check_rev(ws: Workspace, rev: str | None) -> str:
    """The commit ``rev`` names (HEAD by default), or one sentence saying why there is none."""
    if rev is not None and (not rev.strip() or rev.startswith("-")):
        raise RepoStateError(f"--rev '{shown(rev)}' is not a git revision (a branch, tag or commit)")
    if rev is None and ws.git.head() is None:
        raise RepoStateError(f"{ws.root} has no commits yet; register a model first (gitops model create NAME)")
    return ws.git.resolve(rev or "HEAD")


def gather(ws: Workspace, commit: str, rev_label: str, *, worktree_results: bool) -> SiteInputs:
    """Read everything at ``commit`` (already resolved). ``worktree_results`` adds the results
    documents of the work tree that git does not track (what ``gitops eval --out`` left there)."""
    registry = ws.registry_at(commit)  # a broken registry stops here, before anything is written
    github = _github_repo(ws, commit)
    # The long git walks run side by side (each is its own git process) while this thread reads
    # the tree: one walk of the history for the alias moves, the last changes and when each
    # version was registered; one diff walk of the data set files.
    with ThreadPoolExecutor(max_workers=2) as pool:
        walk = pool.submit(ws.git.log, [layout.REGISTRY, "models"], first_parent=True, rev=commit)
        datasets = pool.submit(ws.git.added_lines, [":(glob)registry/datasets/*.yaml"], commit)
        (head,) = ws.git.log([], max_count=1, rev=commit)
        files = ws.git.tree_files(commit)
        warnings: list[str] = []
        results = _results(ws, commit, files, worktree_results, warnings)
        sizes = _sizes(ws, files)
        log, added = walk.result(), datasets.result()
    return SiteInputs(commit=Commit.of(head), rev=rev_label, registry=registry, events=histories(ws, commit, log),
                      registered=_registered(log, added), last_change=_last_changes(log),
                      results=results, github=github, warnings=warnings, sizes=sizes, dvc_cache=has_dvc_cache(ws))


def _github_repo(ws: Workspace, commit: str) -> str | None:
    repo = ws.settings_at(commit).repo
    if repo is None:
        return None
    if not GITHUB_REPO.fullmatch(repo):
        raise RegistryError(f"gitops.yaml: github.repo '{shown(repo)}' is not a GitHub owner/name "
                            "(letters, digits, '-', '.', '_'), so the pages cannot link to it")
    return repo


_VERSION_KEY = re.compile(r"\s+(v[1-9][0-9]{0,8}):\s*(?:#.*)?")


def _registered(log: list[LogEntry], added: list[tuple[LogEntry, dict[str, list[str]]]]
                ) -> dict[tuple[str, str], Commit]:
    """The commit that added each model version and data set version. Keys are ``(model,
    version)`` and ``("dataset:NAME", version)``; ``log`` is the first-parent history of
    ``registry/`` and ``models/``, ``added`` the lines each commit added to the data set files.

    A model version's is the oldest commit in ``log`` (newest first) naming its DVC pointer
    (``models/<model>/<version>.dvc``, written once, when it is registered) or, for a prompt
    version, its config (``models/<model>/<version>.prompt.yaml``); a data set version's
    is the first commit whose diff adds its key to the data set's file."""
    out: dict[tuple[str, str], Commit] = {}
    for entry in reversed(log):
        for path in entry.paths:
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == "models" and parts[2].endswith((".dvc", ".prompt.yaml")):
                out.setdefault((parts[1], parts[2].split(".", 1)[0]), Commit.of(entry))
    for entry, lines_of in reversed(added):
        for path, lines in lines_of.items():
            parts = path.split("/")
            if len(parts) != 3:
                continue
            for line in lines:
                if found := _VERSION_KEY.fullmatch(line):
                    out.setdefault((f"dataset:{parts[2][: -len('.yaml')]}", found.group(1)), Commit.of(entry))
    return out


def _last_changes(log: list[LogEntry]) -> dict[str, Commit]:
    """The newest commit touching each model's directory and each data set's file (``log``: the
    registry's first-parent history, newest first)."""
    out: dict[str, Commit] = {}
    for entry in log:
        for path in entry.paths:
            parts = path.split("/")
            if parts[0] != layout.REGISTRY:
                continue
            if len(parts) == 3 and parts[1] == "datasets" and parts[2].endswith(".yaml"):
                out.setdefault(f"dataset:{parts[2][: -len('.yaml')]}", Commit.of(entry))
            elif len(parts) >= 3 and parts[1] != "datasets":
                out.setdefault(f"model:{parts[1]}", Commit.of(entry))
    return out


_POINTER_SIZE = re.compile(r"^\s*-?\s*size:\s*(\d{1,18})\s*$", re.M)


def _sizes(ws: Workspace, files: list[TreeFile]) -> dict[tuple[str, str], int]:
    """Each version's size as its DVC pointer records it (``models/<model>/<version>.dvc``)."""
    pointers = [f for f in files if f.path.startswith("models/") and f.path.endswith(".dvc")
                and f.path.count("/") == 2 and f.size <= 64 << 10]
    blobs = ws.git.read_blobs(sorted({f.blob for f in pointers}))
    out = {}
    for f in pointers:
        found = _POINTER_SIZE.search(blobs.get(f.blob) or "")
        if found:
            _, model, name = f.path.split("/")
            out[(model, name[: -len(".dvc")])] = int(found.group(1))
    return out


def _results(ws: Workspace, commit: str, files: list[TreeFile], worktree: bool, warnings: list[str]
             ) -> list[ResultsDoc]:
    """Results documents (``results*.json`` anywhere): committed at ``commit``, and with
    ``worktree`` the untracked ones of the work tree. Anything else named so is skipped with a warning."""
    named: list[tuple[str, TreeFile | None]] = [(f.path, f) for f in files
                                                 if RESULTS_NAME.fullmatch(f.path.rsplit("/", 1)[-1])]
    if worktree:
        named += [(rel, None) for rel in ws.git.untracked([":(glob)**/results*.json"], ignored=True)]
    named.sort(key=lambda item: item[0])
    if len(named) > MAX_RESULTS_DOCS:  # read none of the rest
        warnings.append(f"{len(named)} results documents found; the first {MAX_RESULTS_DOCS} by path are shown")
        named = named[:MAX_RESULTS_DOCS]
    blobs = ws.git.read_blobs(sorted({f.blob for _, f in named if f is not None and f.size <= MAX_RESULTS_BYTES}))
    found = [(path, (blobs.get(f.blob) if f.size <= MAX_RESULTS_BYTES else None) if f is not None
              else _read_small(ws.root / path), f is not None) for path, f in named]
    docs = []
    for path, text, committed in found:
        if text is None:
            warnings.append(f"skipped {shown(path)}: larger than {MAX_RESULTS_BYTES >> 20} MiB or unreadable")
            continue
        try:
            results = EvalResults.from_json(text, source=path)
        except GitopsError as exc:
            warnings.append(f"skipped {shown(path)}: not a results document ({exc})")
            continue
        docs.append(ResultsDoc(path, slug(path), results, committed))
    tracked = [d.path for d in docs if d.committed and not d.path.startswith(":")]  # never pathspec magic
    if tracked:
        changed: dict[str, Commit] = {}
        for entry in ws.git.log(tracked, rev=commit):
            for path in entry.paths:
                changed.setdefault(path, Commit.of(entry))
        for doc in docs:
            doc.commit = changed.get(doc.path) if doc.committed else None
    return docs


def _read_small(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_RESULTS_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def slug(path: str) -> str:
    """A file name for a results document's page: readable, unique, safe anywhere."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.lower().removesuffix(".json")).strip("-.")[:60] or "results"
    return f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def has_dvc_cache(ws: Workspace) -> bool:
    """Whether this clone has a DVC cache to look cards up in (a fresh clone, as in the pages workflow, has none)."""
    return (ws.dvc.config.cache_dir / "files" / "md5").is_dir()


def model_card(ws: Workspace, md5: str) -> str | None:
    """The model card (``README.md``) inside a version's weights, when this clone's DVC cache holds
    it (verified against its md5); None otherwise. Never fetches."""
    data = ws.dvc.cached_dir_file(md5, "README.md", MAX_CARD_BYTES)
    return data.decode("utf-8", errors="replace") if data is not None else None


def batch_preview(ws: Workspace, batch: str, budget: list[int], rows: int = 5) -> list[dict] | None:
    """The first ``rows`` rows of a batch file when it is in the work tree and intact (its name
    carries a hash of its content, checked here); None otherwise, or when checking it would take
    more than what is left of ``budget`` (``[bytes]``, shared by one run's previews)."""
    import json

    path = ws.root / batch
    try:
        if not path.is_file():
            return None
        size = path.stat().st_size
        if size > MAX_PREVIEW_BATCH_BYTES or size > budget[0]:
            return None
        budget[0] -= size
        data = path.read_bytes()
    except OSError:
        return None
    expected = batch.rsplit("-", 1)[-1].split(".", 1)[0]
    if len(expected) < 8 or not hashlib.sha256(data).hexdigest().startswith(expected):
        return None
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines()[:rows]:
        try:
            row = json.loads(line)
        except ValueError:
            return None
        if isinstance(row, dict):
            out.append(row)
    return out


@lru_cache(maxsize=1 << 16)
def utc(iso: str | None) -> datetime | None:
    """An ISO 8601 time (git's, or a record's ``created_at``) as an aware UTC datetime; None if unreadable."""
    if not iso or not isinstance(iso, str):
        return None
    try:
        when = datetime.fromisoformat(iso.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
