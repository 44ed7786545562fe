"""``gitops diff``: alias moves and new versions between two git refs (what workflows act on)."""

from __future__ import annotations

from gitops.core.reader import Registry
from gitops.core.workspace import Workspace
from gitops.registry.changes import NULL_SHA, RegistryDiff, diff_registries


def diff(ws: Workspace, base: str, head: str) -> RegistryDiff:
    """Diff the registry at two git refs (``head`` may be ``WORKTREE`` for uncommitted files;
    ``base`` may be the all-zero SHA of a branch-creating push: everything at ``head`` is new)."""
    base_reg = Registry() if base == NULL_SHA else ws.registry_at(base)
    head_reg = ws.registry() if head == "WORKTREE" else ws.registry_at(head)
    return diff_registries(base_reg, head_reg, base, head)
