"""``gitops approvals --base REF``: what the approvals check will ask of a pull request, offline.

Every change between ``REF`` and the work tree (committed or not, untracked files too) that needs
approval, with the path, what changed, the protected aliases whose closure it touches and their
owners: the same computation as the required check (:mod:`gitops.registry.closure`), read from
git and the work tree instead of GitHub's API. It needs no token and judges no reviews.
"""

from __future__ import annotations

from pathlib import Path

from gitops import yamlio
from gitops.adapters.git import Git
from gitops.core import layout
from gitops.core.workspace import Workspace
from gitops.registry.closure import Review, review

WORKTREE = "the work tree"


class GitTree:
    """The repository at a commit: the registry's files read in one git call, others one by one."""

    def __init__(self, git: Git, commit: str, ref: str) -> None:
        self.git, self.commit, self.ref = git, commit, ref
        self._listed: list[str] | None = None
        self._texts: dict[str, str | None] = {}

    def _registry(self) -> list[str]:
        if self._listed is None:
            self._listed = self.git.ls_tree(self.commit, layout.REGISTRY)
            specs = [f"{self.commit}:{p}" for p in self._listed if p.endswith(".yaml")]
            self._texts.update({spec.split(":", 1)[1]: text for spec, text in self.git.read_blobs(specs).items()})
        return self._listed

    def text(self, path: str) -> str | None:
        if path.startswith(layout.REGISTRY + "/"):
            self._registry()
        if path not in self._texts:
            spec = f"{self.commit}:{path}"
            self._texts[path] = self.git.read_blobs([spec])[spec]
        return self._texts[path]

    def dirs(self, path: str) -> list[str] | None:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/", 1)[0] for p in self._registry() if p.startswith(prefix)
                 and "/" in p[len(prefix):]}
        return sorted(names) if names else None


class WorkTree:
    """The work tree as it is: regular files of bounded size (a link or a device reads as no YAML)."""

    ref = WORKTREE

    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, path: str) -> str | None:
        full = self.root / path
        if full.is_symlink() or (full.exists() and not full.is_file()):
            return "\0 not a regular file"
        if not full.is_file():
            return None
        if full.stat().st_size > yamlio.MAX_BYTES:
            return "\0 too large"
        return full.read_text(encoding="utf-8", errors="replace")

    def dirs(self, path: str) -> list[str] | None:
        full = self.root / path
        return sorted(p.name for p in full.iterdir() if p.is_dir()) if full.is_dir() else None


def review_changes(ws: Workspace, base: str) -> Review:
    """Every change between ``base`` and the work tree that needs approval (see the module docstring)."""
    commit = ws.git.resolve(base)
    return review(GitTree(ws.git, commit, base), WorkTree(ws.root), ws.git.changed_since(commit))
