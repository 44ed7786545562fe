"""A write-ahead journal that makes an ingest all-or-nothing, even under SIGKILL.

Before an ingest changes anything it writes ``.git/gitops/ingest.journal``: the commit it starts
from, which tracked files it will change (they are clean, so git holds their old text), the old
text of the untracked ones it may touch (or that they did not exist) and the data files it creates. The journal is removed once the ingest's commit exists. Every ingest first
calls :func:`recover`: if a journal is left over, the ingest that wrote it died, and

* if HEAD moved to a commit that records the journal's version, it finished: roll forward (drop the
  journal and bring the index of its files back to HEAD, which a kill between git's ref update and
  its index write leaves behind; the key cache heals itself);
* otherwise roll back: stale git lock files are removed (their owner is dead: it was our child),
  the tracked files are restored from HEAD and unstaged, the untracked ones get their old text back,
  the new data files are deleted.

Files under ``data/`` are immutable and named by content, so deleting the new ones restores ``data/``.
The DVC cache may keep an unreferenced object: harmless (``dvc gc`` collects it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from gitops import yamlio
from gitops.core import layout
from gitops.core.workspace import Workspace
from gitops.errors import RepoStateError

JOURNAL = ".git/gitops/ingest.journal"  # where it lives in a plain clone (see Workspace.state_path)
LOCK = ".git/gitops/ingest.lock"


@contextlib.contextmanager
def locked(ws: Workspace) -> Iterator[None]:
    """Hold the ingest lock: one ingest per repository at a time. Recovery of a dead ingest is only
    safe when no live one is running; an OS lock (flock) is released by the kernel even on SIGKILL."""
    import fcntl

    root = ws.root
    path = ws.state_path("ingest.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RepoStateError(f"another ingest is running in {root} (it holds {LOCK}); wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class Journal:
    dataset: str
    version: str
    head: str | None
    tracked: list[str] = field(default_factory=list)  # clean tracked files: restored from git
    before: dict[str, str | None] = field(default_factory=dict)  # untracked ones: old text (None: absent)
    created: list[str] = field(default_factory=list)  # new files under data/

    def write(self, ws: Workspace) -> None:
        yamlio.write_atomic(ws.state_path("ingest.journal"), json.dumps(asdict(self), indent=1))

    @staticmethod
    def capture(ws: Workspace, dataset: str, version: str, paths: list[str], created: list[str]) -> Journal:
        """A journal for changing ``paths`` (clean, or untracked) and creating ``created``.

        Tracked files are clean (ingest checks), so git holds their old text: the journal stays
        a few hundred bytes however large the data set file grows. Untracked ones are copied.
        """
        tracked = set(ws.git.ls_files(paths))
        before = {p: (ws.root / p).read_text(encoding="utf-8") if (ws.root / p).is_file() else None
                  for p in paths if p not in tracked}
        return Journal(dataset, version, ws.git.head(), sorted(tracked), before, created)


def clear(ws: Workspace) -> None:
    ws.state_path("ingest.journal").unlink(missing_ok=True)


def recover(ws: Workspace) -> str | None:
    """Finish or undo an interrupted ingest; return what was done ("rolled back"/"rolled forward") or None."""
    path = ws.state_path("ingest.journal")
    if not path.is_file():
        return None
    try:
        journal = Journal(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        # The journal is written atomically, so this is not our crash; refuse to guess.
        raise RepoStateError(f"{path}: unreadable ingest journal; inspect the repository and delete it") from None
    _remove_git_locks(ws)
    if _committed(ws, journal):
        # `git commit -- paths` moves HEAD before it writes the real index: a kill in between
        # leaves the index at the old content. The work tree is what was committed; sync the index.
        ws.git.run("reset", "-q", "--", *journal.tracked, *journal.before, check=False)
        clear(ws)
        return "rolled forward"
    ws.git.restore(journal.tracked)
    for rel, text in journal.before.items():
        target = ws.root / rel
        if text is None:
            target.unlink(missing_ok=True)
        else:
            yamlio.write_atomic(target, text)
    if journal.before:
        ws.git.run("reset", "-q", "--", *journal.before, check=False)
    for rel in journal.created:
        target = ws.root / rel
        target.unlink(missing_ok=True)
        for tmp in target.parent.glob(f".{target.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    clear(ws)
    ws.forget()
    return "rolled back"


def _committed(ws: Workspace, journal: Journal) -> bool:
    head = ws.git.head()
    if head is None or head == journal.head:
        return False
    rel = layout.dataset_file(journal.dataset)
    text = ws.git.read_blobs([f"{head}:{rel}"])[f"{head}:{rel}"] or ""
    # cheap and sufficient: the version id appears as a key of 'versions' in the committed file
    return f"\n  {journal.version}:\n" in text


def _remove_git_locks(ws: Workspace) -> None:
    """Lock files a killed ``git add``/``git commit`` (our child) left behind."""
    gitdir = ws.git.git_dir
    common = ws.git.common_dir()
    branch = ws.git.current_branch()
    candidates = [gitdir / "index.lock", gitdir / "HEAD.lock"]
    if branch:
        candidates.append(common / "refs" / "heads" / f"{branch}.lock")
    for lock in candidates:
        lock.unlink(missing_ok=True)
