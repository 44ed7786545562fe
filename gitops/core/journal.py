"""One write-ahead journal for every verb that commits, so a SIGKILL at any moment leaves the
repository as it was before the command or as it is after it, never between.

Ingest, register, alias set/unset, model create and data set create all run the same way::

    with ws.writing("register m"):                  # the write lock; first settle what a dead verb left
        ...validate, refuse bad input...
        with ws.transaction(paths, created, "register m v3"):   # the journal is written before any change
            ...write files...
            ws.commit(paths, message)               # seal the journal, commit, drop the journal

The journal (``.git/gitops/journal.json``) holds the commit the verb starts from, the tracked
files it will change (they are clean, so git holds their old text: the journal stays small however
large a data set file grows), the old text of the untracked ones (or that they did not exist), the
files and directories it creates and, *sealed* just before ``git commit``, the blob ids the commit
will record (``git hash-object``, so git's filters count). A journal is left only when its writer
died; whoever takes the write lock next settles it:

* **forward** when HEAD holds exactly the sealed blobs: the commit happened. The index of those
  files is brought to HEAD (``git commit -- paths`` moves the branch before it writes the index; a
  kill in between leaves the index behind) and the journal dropped;
* **back** when HEAD is still the journal's commit: tracked files restored from HEAD and unstaged,
  untracked ones given their old text back (or removed), created files and directories deleted;
* otherwise it refuses: HEAD moved to a commit the journal does not describe (someone committed
  since), and guessing could lose work. The message names the journal to inspect.

An error or Ctrl-C inside the transaction settles the same way at once; any other death leaves the
journal for the next command.

The write lock is an ``flock`` on ``.git/gitops/write.lock`` whose descriptor every git child
inherits (:func:`gitops.adapters.git.children_inherit`), so the kernel frees it only when the verb
*and every git process it started* have exited: a gitops process killed alone leaves its git child
running, holding the lock, and the next command waits for it instead of undoing a commit in
flight. Holding the lock therefore proves the writer of a journal dead, and with it the git
children that could own a lock file (``index.lock``, ``HEAD.lock``, the branch's ref lock). Such a
stale lock is removed, but only once no live git process works in the tree either (``/proc``,
waited for a few seconds): it could be the user's own git in another terminal. Where the system
cannot list processes, a lock is removed only when a journal proves a dead transaction left it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from gitops import yamlio
from gitops.adapters.git import Git, children_inherit
from gitops.errors import RepoStateError

JOURNAL = "journal.json"  # under the git directory's gitops/ (Workspace.state_path)
LOCK = "write.lock"
GIT_WAIT_S = 5.0  # how long a live git process in the tree may take to finish before we refuse


@dataclass
class Journal:
    """What one transaction is about to do (see the module docstring); paths relative to the root."""

    verb: str  # what was interrupted, for the user: "register m v3"
    head: str | None
    tracked: list[str] = field(default_factory=list)  # clean tracked files: restored from git
    before: dict[str, str | None] = field(default_factory=dict)  # untracked ones: old text (None: absent)
    created: list[str] = field(default_factory=list)  # new files and directories: deleted on the way back
    sealed: dict[str, str | None] | None = None  # path -> blob id the commit records (None: deleted)

    @property
    def paths(self) -> list[str]:
        return [*self.tracked, *self.before]


def begin(git: Git, path: Path, verb: str, paths: list[str], created: list[str]) -> Journal:
    """Write the journal for changing ``paths`` and creating ``created``, before any of it happens."""
    tracked = set(git.ls_files(paths))
    before = {p: _text(git.root / p) for p in paths if p not in tracked}
    entry = Journal(verb, git.head(), sorted(tracked), before, sorted(set(created)))
    _write(path, entry)
    return entry


def seal(git: Git, path: Path, entry: Journal, paths: list[str]) -> None:
    """Record what the commit of ``paths`` will hold, just before ``git commit`` runs: after it,
    HEAD holding exactly these blobs is the proof that the commit happened."""
    present = [p for p in paths if (git.root / p).is_file()]
    ids = git.run("hash-object", "--", *present).split() if present else []
    entry.sealed = {**dict.fromkeys(paths), **dict(zip(present, ids, strict=True))}
    _write(path, entry)


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)


def read(path: Path) -> Journal | None:
    """The journal a dead verb left, or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Journal(**json.loads(text))
    except (ValueError, TypeError):
        # It is written atomically, so this is not our crash: refuse to guess.
        raise RepoStateError(f"{path}: unreadable gitops journal; inspect the repository (git status), "
                             "then delete it") from None


def recover(git: Git, path: Path) -> tuple[str, str] | None:
    """Settle what a dead verb left (its journal, stale git locks): ``(verb, "rolled back"/"rolled
    forward")``, or None when there was no journal. Call only while holding the write lock."""
    entry = read(path)
    clear_git_locks(git, journal_left=entry is not None)
    if entry is None:
        return None
    outcome = settle(git, entry, path)
    clear(path)
    return entry.verb, outcome


def undo(git: Git, path: Path, entry: Journal) -> str:
    """A transaction failed in this process: settle its journal now (as the next command would)."""
    outcome = settle(git, entry, path)
    clear(path)
    return outcome


def settle(git: Git, entry: Journal, path: Path) -> str:
    """Roll ``entry`` forward (its commit exists) or back (HEAD has not moved); refuse anything else."""
    head = git.head()
    if head != entry.head:
        if entry.sealed is None or not _records(git, head, entry.sealed):
            raise RepoStateError(
                f"{path}: an interrupted {entry.verb} started at commit {_short(entry.head)}, but HEAD is now "
                f"{_short(head)}, which does not hold its change; inspect the repository (git status, git log), "
                "then delete the journal")
        if entry.paths:
            git.run("reset", "-q", "--", *entry.paths, check=False)
        _remove_temporaries(git.root, entry)
        return "rolled forward"
    _roll_back(git, entry)
    return "rolled back"


def _records(git: Git, head: str | None, sealed: dict[str, str | None]) -> bool:
    """Whether commit ``head`` holds exactly the sealed blob of every path (and none of a deleted one)."""
    if head is None:
        return False
    out = git.run("ls-tree", "-z", head, "--", *sealed) if sealed else ""
    held = {}
    for record in filter(None, out.split("\0")):
        meta, _, name = record.partition("\t")
        held[name] = meta.split()[2]
    return all(held.get(p) == blob for p, blob in sealed.items())


def _roll_back(git: Git, entry: Journal) -> None:
    git.restore(entry.tracked)
    for rel, text in entry.before.items():
        target = git.root / rel
        if text is None:
            target.unlink(missing_ok=True)
        else:
            yamlio.write_atomic(target, text)
    if entry.before:
        git.run("reset", "-q", "--", *entry.before, check=False)
    for rel in entry.created:
        target = git.root / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    _remove_temporaries(git.root, entry)


def _remove_temporaries(root: Path, entry: Journal) -> None:
    """The half-written siblings a kill inside an atomic write (``.NAME.*.tmp``) or a cache link
    (``.NAME.PID.link``) leaves next to a journaled file."""
    for rel in {*entry.paths, *entry.created}:
        target = root / rel
        if target.parent.is_dir():
            for pattern in (f".{target.name}.*.tmp", f".{target.name}.*.link"):
                for tmp in target.parent.glob(pattern):
                    tmp.unlink(missing_ok=True)


def clear_git_locks(git: Git, *, journal_left: bool) -> None:
    """Remove the lock files a killed git left in this work tree, once their owner is known dead.

    Our own git children are dead (we hold the write lock they would inherit); a live git process
    in the tree may own the lock, so it gets :data:`GIT_WAIT_S` to finish before we refuse."""
    locks = git.lock_files()
    if not locks:
        return
    live = _wait_for_gits(git)
    shown = _shown(git.root, locks[0])
    if live:
        raise RepoStateError(f"git (pid {live[0]}) is running in {git.root} and may own {shown}; wait for it "
                             "to finish, then run again")
    if live is None and not journal_left:
        raise RepoStateError(f"{shown} exists: a git process may be running in {git.root}; if none is, "
                             "delete that file and run again")
    for lock in git.lock_files():  # again: a git that finished while we waited took its lock with it
        lock.unlink(missing_ok=True)


def _wait_for_gits(git: Git) -> list[int] | None:
    deadline = time.monotonic() + GIT_WAIT_S
    live = git.live_processes()
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = git.live_processes()
    return live


class WriteLock:
    """The write lock of one work tree (see the module docstring), held by one Workspace."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._inherit = children_inherit(handle.fileno())
        self._inherit.__enter__()

    @classmethod
    def acquire(cls, path: Path, root: Path, verb: str) -> WriteLock:
        """Take the lock for ``verb``, or refuse naming who holds it: at once while that verb runs;
        after :data:`GIT_WAIT_S` when it is dead but git processes it started still finish."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + GIT_WAIT_S
        while not _try_lock(handle):
            pid, _ = _holder(path)
            if (pid is None or _alive(pid)) or time.monotonic() > deadline:
                handle.close()
                raise RepoStateError(_busy(path, root))
            time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {verb}\n")
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        import fcntl

        self._inherit.__exit__(None, None, None)
        try:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        finally:
            self._handle.close()


def _try_lock(handle: IO[str]) -> bool:
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _holder(path: Path) -> tuple[int | None, str]:
    """The pid and verb the lock file names (written by whoever took the lock last)."""
    try:
        pid_text, _, verb = path.read_text(encoding="utf-8").strip().partition(" ")
        return int(pid_text), verb[:200] or "gitops command"
    except (OSError, ValueError):
        return None, "gitops command"


def _busy(path: Path, root: Path) -> str:
    """Who holds the lock, in a sentence: a live verb, or git processes a dead one left running."""
    pid, verb = _holder(path)
    if pid is None:
        return f"another gitops command is changing {root} (it holds {path}); wait for it"
    if _alive(pid):
        return f"another {verb} is running in {root} (pid {pid}, it holds {path}); wait for it"
    return (f"an interrupted {verb} (pid {pid}) left a git process running in {root} that holds {path}; "
            "wait for it to finish")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _write(path: Path, entry: Journal) -> None:
    yamlio.write_atomic(path, json.dumps(asdict(entry), indent=1))


def _shown(root: Path, path: Path) -> str:
    """``path`` relative to the work tree when inside it (``.git/index.lock``), else in full."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "(none)"
