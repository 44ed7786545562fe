"""Running git, and what running gits leave behind: the one place a git process starts
(:func:`run`: its environment, the descriptors it inherits, git's own maintenance kept out of the
foreground), how a work tree and its git directories are found, and the lock files and live git
processes a killed command leaves (what :mod:`gitops.core.journal` settles). The commands
themselves are :mod:`gitops.adapters.git`'s."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from gitops.errors import GitError, RepoStateError

# Commits made by the toolkit must not depend on the user's editor, pager or signing setup.
_ENV_OVERRIDES = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}

# Descriptors every git child inherits (the write lock, see gitops.core.journal): while one is held,
# git's background maintenance runs in the foreground, so no detached grandchild keeps it for minutes.
_INHERITED: set[int] = set()
_FOREGROUND = ("-c", "gc.autoDetach=false", "-c", "maintenance.autoDetach=false")
# No git command gitops runs starts git's automatic maintenance (`git commit` does, once about 6,700
# loose objects pile up: `git gc --auto` repacks, expires reflogs and prunes by walking every object,
# in the foreground under the write lock: ingest #1,000 took 16 s and #2,409 35 s, issue 20 item 8).
# gitops packs loose objects itself, incrementally and bounded (:func:`gitops.adapters.git.pack_loose`); a full `git gc`
# is left to scheduled maintenance (docs/data.md#git-maintenance).
_NO_AUTO_MAINTENANCE = ("-c", "gc.auto=0", "-c", "maintenance.auto=false")


@contextlib.contextmanager
def children_inherit(fd: int) -> Iterator[None]:
    """Every git process started inside this block inherits ``fd`` (an flock stays held while any lives)."""
    _INHERITED.add(fd)
    try:
        yield
    finally:
        _INHERITED.discard(fd)


def environment() -> dict[str, str]:
    """The environment every git process gets: this one's, with :data:`_ENV_OVERRIDES`."""
    return {**os.environ, **_ENV_OVERRIDES}


def run(root: Path | str, *args: str, input: str | None = None, check: bool = True,
        env: dict[str, str] | None = None) -> str:
    """Run ``git args`` in ``root`` and return stdout (text); ``env`` adds variables (GIT_INDEX_FILE)."""
    env = {**environment(), **(env or {})}
    argv = ["git", *_NO_AUTO_MAINTENANCE, *(_FOREGROUND if _INHERITED else ()), *args]
    try:
        proc = subprocess.run(argv, cwd=root, input=input, capture_output=True, text=True, env=env, check=False,
                              pass_fds=tuple(_INHERITED))
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        key = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        reason = (key or lines or [f"exit code {proc.returncode}"])[0]
        raise GitError(f"git {args[0]} failed: {reason}")
    return proc.stdout


# Environment variables that change where git finds the repository: with any of them set, ask git.
_DISCOVERY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def find_root(start: Path | str = ".") -> Path:
    """The top of the git work tree containing ``start``.

    Found the way git finds it, by looking for ``.git`` (a directory, or the file of a linked
    worktree) in ``start`` and its parents, without starting a git process: every command calls
    this first. When the environment redirects git's discovery, git itself answers."""
    start = Path(start)
    if not start.exists():
        raise RepoStateError(f"{start}: directory does not exist")
    if not any(name in os.environ for name in _DISCOVERY_ENV):
        here = start.resolve()
        for directory in (here, *here.parents):
            dot = directory / ".git"
            if dot.is_file() or (dot / "HEAD").is_file():
                return directory
            if directory.name == ".git" and (directory / "HEAD").is_file():
                break  # inside a git directory, not a work tree: git refuses too
    else:
        proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True,
                              check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return Path(proc.stdout.strip())
    raise RepoStateError(f"{start.resolve()} is not inside a git repository (run 'gitops init' to make one)")


def git_dir(root: Path) -> Path:
    """The work tree's private git directory: ``.git``, or what a linked worktree's ``.git`` file names."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    return Path(run(root, "rev-parse", "--absolute-git-dir").strip())


def common_dir(root: Path) -> Path:
    """The git directory shared by all worktrees (where ``refs/heads`` live)."""
    if (root / ".git").is_dir():
        return root / ".git"
    return Path(run(root, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())


def lock_files(root: Path, gitdir: Path | None = None) -> list[Path]:
    """Lock files a git add/commit/reset killed in this work tree leaves behind (index, HEAD, the
    branch), and those of the branches gitops itself makes (``gitops/promote-...``, whose creation
    a kill may interrupt)."""
    gitdir = gitdir or git_dir(root)
    candidates = [gitdir / "index.lock", gitdir / "HEAD.lock"]
    try:
        head_ref = (gitdir / "HEAD").read_text(encoding="utf-8").strip()  # no git process: every verb asks
    except OSError:
        head_ref = ""
    common = common_dir(root)
    if head_ref.startswith("ref: refs/"):
        candidates.append(common / f"{head_ref[5:]}.lock")
    own = common / "refs" / "heads" / "gitops"
    if own.is_dir():
        candidates += sorted(own.rglob("*.lock"))
    return [p for p in candidates if p.exists()]


def live_git_processes(root: Path) -> list[int] | None:
    """Pids of running git processes whose directory is inside ``root`` (Linux: ``/proc``); None
    where the system cannot tell. Processes of other users are invisible, as to ``ps``."""
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    top = Path(root).resolve()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("git"):
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone, a zombie, or not ours to see
            continue
        if cwd == top or top in cwd.parents:
            found.append(int(entry.name))
    return found
