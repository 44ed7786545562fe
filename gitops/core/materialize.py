"""A registered version's files on disk: fetched through DVC, verified against the registry's md5.

Evaluation, conversion and continued training all start here, so a version whose files were
tampered with (or whose pointer disagrees with the registry) is refused before it is used.
"""

from __future__ import annotations

from pathlib import Path

from gitops.adapters.dvc import read_pointer
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import IntegrityError, NotFoundError


def version_files(ws: Workspace, model: str, version: Version, *, verify: bool = True) -> Path:
    """The weights directory of ``model@version``, pulled from the DVC remote if absent."""
    rel_pointer = f"{version.path}.dvc"
    pointer = ws.root / rel_pointer
    if not pointer.exists():
        raise NotFoundError(f"{model}@{version.id}: {rel_pointer} is missing, so its weights are not tracked")
    recorded = read_pointer(pointer)["md5"]
    if recorded != version.md5:
        raise IntegrityError(f"{model}@{version.id}: {rel_pointer} records md5 {recorded}, but the registry "
                             f"records {version.md5}; refusing to use it")
    target = ws.root / version.path
    if not target.exists():
        ws.dvc.pull([rel_pointer])
    if verify and ws.dvc.changed([rel_pointer]):
        raise IntegrityError(f"{model}@{version.id}: the files in {version.path} do not match the md5 the "
                             f"registry records ({version.md5}); refusing to use them (restore them with "
                             f"'dvc checkout {rel_pointer}')")
    return target
