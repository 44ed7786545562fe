"""git, through its command line. Failures become :class:`GitError` carrying git's stderr."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitops.adapters.gitproc import children_inherit as children_inherit
from gitops.adapters.gitproc import common_dir, environment, git_dir, live_git_processes, lock_files, run
from gitops.adapters.gitproc import find_root as find_root
from gitops.errors import GitError, RepoStateError

# Loose objects (git's own estimate: objects/17 x 256) before gitops packs them itself
# (:func:`pack_loose`; git's automatic maintenance is off in every git gitops runs: gitproc.run).
LOOSE_PACK_LIMIT = 1024


def init(root: Path, branch: str = "main") -> None:
    root.mkdir(parents=True, exist_ok=True)
    run(root, "init", "-q", "-b", branch)


def head(root: Path) -> str | None:
    """The commit HEAD points at, or None in a repository with no commits."""
    out = run(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip()
    return out or None


def resolve(root: Path, ref: str) -> str:
    out = run(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).strip()
    if not out:
        raise GitError(f"git reference '{ref}' does not exist in {root}")
    return out


def dirty_paths(root: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not); untracked files are not counted."""
    out = run(root, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in out.splitlines() if line.strip()]


def require_clean(root: Path, action: str) -> None:
    dirty = dirty_paths(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise RepoStateError(
            f"cannot {action}: the work tree has uncommitted changes ({shown}); commit or stash them first"
        )


def add(root: Path, paths: list[str]) -> None:
    if paths:
        run(root, "add", "--", *paths)


def commit(root: Path, message: str, paths: list[str] | None = None) -> str:
    """Commit the staged changes (or exactly ``paths``); return the new commit id."""
    args = ["commit", "-q", "--no-verify", "-m", message]
    if paths is not None:
        args += ["--", *paths]
    run(root, *args)
    return run(root, "rev-parse", "HEAD").strip()


def commit_to_new_branch(root: Path, branch: str, start: str, files: dict[str, str], message: str) -> str:
    """Create ``branch`` at a new commit whose parent is ``start`` and whose tree is ``start``'s with
    ``files`` (path -> text) written; return the commit id. Neither the work tree, nor the index,
    nor HEAD is touched (the tree is built in a temporary index), and the branch is created last,
    only if it does not exist yet (``update-ref`` against the all-zero id): a process killed at any
    moment leaves either no branch or the whole commit, and the work tree as it was."""
    import tempfile

    parent = resolve(root, start)
    with tempfile.TemporaryDirectory(prefix="gitops-index-") as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        run(root, "read-tree", parent, env=index)
        for path, text in files.items():
            blob = run(root, "hash-object", "-w", "--stdin", "--path", path, input=text).strip()
            run(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = run(root, "write-tree", env=index).strip()
    sha = run(root, "commit-tree", tree, "-p", parent, "-F", "-", input=message).strip()
    run(root, "update-ref", "-m", f"gitops: {message.splitlines()[0]}", f"refs/heads/{branch}", sha, "0" * 40)
    return sha


def restore(root: Path, paths: list[str]) -> None:
    """Put ``paths`` back as HEAD has them (unstaged and staged), deleting files HEAD lacks."""
    if not paths:
        return
    tracked = run(root, "ls-files", "--", *paths).split()
    run(root, "reset", "-q", "--", *paths, check=False)
    if tracked and head(root):
        run(root, "checkout", "-q", "HEAD", "--", *tracked, check=False)


def user(root: Path) -> str:
    """``Name <email>`` of the configured git user (the author of commits made now)."""
    found: dict[str, str] = {}  # one git process; the last value of a key wins, as with 'git config KEY'
    for line in run(root, "config", "--get-regexp", r"^user\.(name|email)$", check=False).splitlines():
        key, _, value = line.partition(" ")
        found[key] = value
    name, email = found.get("user.name", "").strip(), found.get("user.email", "").strip()
    if not name:
        raise RepoStateError("git user.name is not set (git config user.name 'Your Name')")
    return f"{name} <{email}>" if email else name


def ls_tree(root: Path, ref: str, prefix: str) -> list[str]:
    """Files under ``prefix`` at ``ref``."""
    out = run(root, "ls-tree", "-r", "--name-only", "-z", ref, "--", prefix)
    return [p for p in out.split("\0") if p]


def changed_since(root: Path, ref: str) -> list[str]:
    """Every path that differs between ``ref`` and the work tree: changed, added, deleted (a rename
    as both its paths), staged or not, and untracked files git does not ignore."""
    tracked = run(root, "diff", "--name-only", "--no-renames", "-z", ref, "--").split("\0")
    untracked = run(root, "ls-files", "-z", "--others", "--exclude-standard").split("\0")
    return sorted({p for p in tracked + untracked if p})


def read_blobs(root: Path, specs: list[str]) -> dict[str, str | None]:
    """Contents of many ``REF:path`` objects in one git process (None for a missing object)."""
    if not specs:
        return {}
    env = environment()
    proc = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=root,
        input=("\n".join(specs) + "\n").encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(f"git cat-file failed: {proc.stderr.decode(errors='replace').strip()}")
    data, pos = proc.stdout, 0
    result: dict[str, str | None] = {}
    for spec in specs:
        end = data.index(b"\n", pos)
        header = data[pos:end].decode()
        pos = end + 1
        if header.endswith((" missing", " ambiguous")):
            result[spec] = None
            continue
        size = int(header.rsplit(" ", 1)[1])
        result[spec] = data[pos : pos + size].decode("utf-8", errors="replace")
        pos += size + 1
    return result


@dataclass(frozen=True)
class LogEntry:
    commit: str
    author: str
    email: str
    date: str
    subject: str
    body: str
    paths: tuple[str, ...]


_LOG_FORMAT = "%x1e%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1f%b%x1f"


def log(root: Path, paths: list[str], max_count: int | None = None, *, first_parent: bool = False,
        rev: str | None = None) -> list[LogEntry]:
    """Commits touching ``paths``, newest first, with the files each changed among them.

    ``first_parent`` follows the first-parent line only, so a change merged through a pull request
    is listed once, as the merge that landed it. ``rev`` starts the walk there instead of at HEAD."""
    args = ["log", f"--format={_LOG_FORMAT}", "--name-only", "--no-renames"]
    if first_parent:
        args += ["--first-parent", "--diff-merges=first-parent"]
    if max_count:
        args.append(f"-n{max_count}")
    if rev is not None:
        args.append(resolve(root, rev))  # a commit id: never read as an option
    out = run(root, *args, "--", *paths)
    entries = []
    for chunk in out.split("\x1e")[1:]:
        fields = chunk.split("\x1f")
        commit, author, email, date, subject, body = fields[:6]
        files = tuple(p for p in fields[6].split("\n") if p.strip())
        entries.append(LogEntry(commit, author, email, date, subject, body.strip(), files))
    return entries


def added_lines(root: Path, paths: list[str], rev: str) -> list[tuple[LogEntry, dict[str, list[str]]]]:
    """Each first-parent commit from ``rev`` touching ``paths``, newest first, with the lines it
    added to each file (``git log -p -U0``: one git process however long the history)."""
    out = run(root, "log", f"--format={_LOG_FORMAT}", "-p", "-U0", "--no-color", "--no-renames", "--no-ext-diff",
              "--first-parent", "--diff-merges=first-parent", resolve(root, rev), "--", *paths)
    result = []
    for chunk in out.split("\x1e")[1:]:
        fields = chunk.split("\x1f")
        commit, author, email, date, subject, body = fields[:6]
        added: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in fields[6].split("\n"):
            if line.startswith("+++ "):
                name = line[4:]
                current = added.setdefault(name[2:], []) if name.startswith("b/") else None
            elif line.startswith("+") and current is not None:
                current.append(line[1:])
        result.append((LogEntry(commit, author, email, date, subject, body.strip(), tuple(added)), added))
    return result


@dataclass(frozen=True)
class TreeFile:
    path: str
    size: int
    blob: str  # the object id: read it with read_blobs([blob]), no tree walk needed


def tree_files(root: Path, ref: str) -> list[TreeFile]:
    """Every file committed at ``ref``, in git's order."""
    out = run(root, "ls-tree", "-r", "-l", "-z", "--full-tree", resolve(root, ref))
    files = []
    for record in out.split("\0"):
        meta, sep, path = record.partition("\t")
        fields = meta.split()
        if sep and len(fields) == 4 and fields[1] == "blob":
            files.append(TreeFile(path, int(fields[3]) if fields[3].isdigit() else 0, fields[2]))
    return files


def untracked(root: Path, patterns: list[str], *, ignored: bool = False) -> list[str]:
    """Files matching the pathspec ``patterns`` that git does not track (and, unless ``ignored``,
    does not ignore either)."""
    out = run(root, "ls-files", "-z", "--others", *([] if ignored else ["--exclude-standard"]), "--", *patterns)
    return [p for p in out.split("\0") if p]


def current_branch(root: Path) -> str | None:
    out = run(root, "symbolic-ref", "--short", "-q", "HEAD", check=False).strip()
    return out or None


def push(root: Path, remote: str = "origin", refspec: str = "HEAD") -> None:
    """Push the current branch (HEAD) to ``remote``."""
    if remote not in remotes(root):
        raise GitError(f"git push failed: the repository has no remote '{remote}' (git remote add {remote} URL)")
    run(root, "push", "-q", remote, refspec)


def remotes(root: Path) -> list[str]:
    return run(root, "remote").split()


def ls_files(root: Path, paths: list[str]) -> list[str]:
    """Which of ``paths`` (or files under them) git tracks."""
    return run(root, "ls-files", "--", *paths).split() if paths else []


def branch_exists(root: Path, branch: str) -> bool:
    return bool(run(root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).strip())


def delete_branch(root: Path, branch: str, commit: str | None = None) -> None:
    """Delete the local ``branch`` (never the checked-out one: git refuses); with ``commit``, only
    if it still points there (so a branch someone moved is left alone, and a missing one is fine)."""
    if commit is None:
        run(root, "branch", "-q", "-D", branch)
    else:
        run(root, "update-ref", "-d", f"refs/heads/{branch}", commit, check=False)


def delete_remote_branch(root: Path, remote: str, branch: str) -> None:
    """Delete ``branch`` on ``remote`` (``git push REMOTE --delete BRANCH``)."""
    run(root, "push", "-q", remote, "--delete", f"refs/heads/{branch}")


def loose_estimate(root: Path) -> int:
    """Loose objects in the repository, estimated as git estimates them for ``gc --auto``: the
    entries of one of the 256 fan-out directories (``objects/17``), times 256. One directory read."""
    folder = common_dir(root) / "objects" / "17"
    try:
        return 256 * sum(1 for entry in os.scandir(folder) if len(entry.name) >= 38)
    except FileNotFoundError:
        return 0


def pack_loose(root: Path, limit: int | None = None) -> bool:
    """Pack the loose objects into one new pack when there are more than about ``limit`` of them
    (default :data:`LOOSE_PACK_LIMIT`), without walking the history (git maintenance's
    ``loose-objects`` task, then ``prune-packed`` to delete the packed copies): its cost follows the
    loose objects, not the repository's size, so the commit that triggers it stays bounded.
    Returns whether it packed."""
    if loose_estimate(root) <= (LOOSE_PACK_LIMIT if limit is None else limit):
        return False
    run(root, "maintenance", "run", "--task=loose-objects", "--quiet")
    run(root, "prune-packed", "-q")
    return True


def fetch(root: Path, remote: str = "origin") -> None:
    """``git fetch`` from ``remote``: updates its remote-tracking refs, never the work tree."""
    run(root, "fetch", "-q", "--no-tags", remote)


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    """Whether commit ``older`` is ``newer`` or one of its ancestors."""
    out = subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=root, capture_output=True,
                         text=True, env=environment(), check=False)
    if out.returncode not in (0, 1):
        raise GitError(f"git merge-base failed: {(out.stderr.strip().splitlines() or ['?'])[0]}")
    return out.returncode == 0


def worktree_checkout(root: Path, path: Path, commit: str) -> None:
    """Make ``path`` a linked worktree of ``root``'s repository at ``commit`` (detached), creating
    it when absent; files git does not track there (e.g. DVC-tracked weights) are left alone."""
    if not (path / ".git").is_file():
        run(root, "worktree", "prune")
        run(root, "worktree", "add", "-q", "--detach", "--force", str(path), commit)
    else:
        run(path, "checkout", "-q", "--detach", "--force", commit)


def worktree_remove(root: Path, path: Path) -> None:
    """Remove the linked worktree at ``path`` (its files too) and forget it; nothing when it is gone."""
    import shutil

    run(root, "worktree", "remove", "--force", "--force", str(path), check=False)
    shutil.rmtree(path, ignore_errors=True)
    run(root, "worktree", "prune", check=False)


def create_branch(root: Path, branch: str, commit: str, message: str) -> None:
    """Create ``branch`` at ``commit`` only if it does not exist (``update-ref`` against the all-zero
    id): it appears whole, at once, or not at all."""
    run(root, "update-ref", "-m", f"gitops: {message}", f"refs/heads/{branch}", commit, "0" * 40)


def changed_paths(root: Path, base: str, head: str) -> list[str]:
    """Paths that differ between commits ``base`` and ``head``."""
    return [p for p in run(root, "diff", "--name-only", "-z", "--no-renames", base, head).split("\0") if p]


class Git:
    """git bound to one work tree: what a :class:`~gitops.core.workspace.Workspace` hands to verbs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._git_dir: Path | None = None

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return run(self.root, *args, input=input, check=check)

    @property
    def git_dir(self) -> Path:
        if self._git_dir is None:
            self._git_dir = git_dir(self.root)
        return self._git_dir

    def common_dir(self) -> Path:
        return common_dir(self.root)

    def head(self) -> str | None:
        return head(self.root)

    def resolve(self, ref: str) -> str:
        return resolve(self.root, ref)

    def dirty_paths(self) -> list[str]:
        return dirty_paths(self.root)

    def pack_loose(self) -> bool:
        return pack_loose(self.root)

    def require_clean(self, action: str) -> None:
        require_clean(self.root, action)

    def add(self, paths: list[str]) -> None:
        add(self.root, paths)

    def commit(self, message: str, paths: list[str] | None = None) -> str:
        return commit(self.root, message, paths)

    def restore(self, paths: list[str]) -> None:
        restore(self.root, paths)

    def commit_to_new_branch(self, branch: str, start: str, files: dict[str, str], message: str) -> str:
        return commit_to_new_branch(self.root, branch, start, files, message)

    def user(self) -> str:
        return user(self.root)

    def ls_tree(self, ref: str, prefix: str) -> list[str]:
        return ls_tree(self.root, ref, prefix)

    def ls_files(self, paths: list[str]) -> list[str]:
        return ls_files(self.root, paths)

    def read_blobs(self, specs: list[str]) -> dict[str, str | None]:
        return read_blobs(self.root, specs)

    def log(self, paths: list[str], max_count: int | None = None, *, first_parent: bool = False,
            rev: str | None = None) -> list[LogEntry]:
        return log(self.root, paths, max_count, first_parent=first_parent, rev=rev)

    def added_lines(self, paths: list[str], rev: str) -> list[tuple[LogEntry, dict[str, list[str]]]]:
        return added_lines(self.root, paths, rev)

    def tree_files(self, ref: str) -> list[TreeFile]:
        return tree_files(self.root, ref)

    def untracked(self, patterns: list[str], *, ignored: bool = False) -> list[str]:
        return untracked(self.root, patterns, ignored=ignored)

    def changed_since(self, ref: str) -> list[str]:
        return changed_since(self.root, ref)

    def current_branch(self) -> str | None:
        return current_branch(self.root)

    def branch_exists(self, branch: str) -> bool:
        return branch_exists(self.root, branch)

    def lock_files(self) -> list[Path]:
        return lock_files(self.root, self.git_dir)

    def live_processes(self) -> list[int] | None:
        return live_git_processes(self.root)

    def remotes(self) -> list[str]:
        return remotes(self.root)

    def push(self, remote: str = "origin", refspec: str = "HEAD") -> None:
        push(self.root, remote, refspec)

    def delete_branch(self, branch: str, commit: str | None = None) -> None:
        delete_branch(self.root, branch, commit)

    def delete_remote_branch(self, remote: str, branch: str) -> None:
        delete_remote_branch(self.root, remote, branch)

    def fetch(self, remote: str = "origin") -> None:
        fetch(self.root, remote)

    def is_ancestor(self, older: str, newer: str) -> bool:
        return is_ancestor(self.root, older, newer)

    def worktree_checkout(self, path: Path, commit: str) -> None:
        worktree_checkout(self.root, path, commit)

    def worktree_remove(self, path: Path) -> None:
        worktree_remove(self.root, path)

    def create_branch(self, branch: str, commit: str, message: str) -> None:
        create_branch(self.root, branch, commit, message)

    def changed_paths(self, base: str, head: str) -> list[str]:
        return changed_paths(self.root, base, head)
