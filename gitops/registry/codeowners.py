"""``gitops codeowners``: ``.github/CODEOWNERS`` from the protected aliases (print, check, write)."""

from __future__ import annotations

from dataclasses import dataclass

from gitops import yamlio
from gitops.core.workspace import Workspace
from gitops.registry import codeowners_text


@dataclass
class CodeownersResult:
    path: str
    text: str
    in_sync: bool
    written: bool


def codeowners(ws: Workspace, write: bool = False) -> CodeownersResult:
    """The CODEOWNERS text the registry implies, whether the file matches, and (``write``) fix it."""
    text = codeowners_text.render(ws.registry(), ws.settings.admins, ws.settings.admin_paths)
    in_sync = codeowners_text.current(ws.root) == text
    if write and not in_sync:
        yamlio.write_atomic(ws.root / codeowners_text.CODEOWNERS, text)
    return CodeownersResult(codeowners_text.CODEOWNERS, text, in_sync, write and not in_sync)
