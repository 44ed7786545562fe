"""``gitops dataset show``: a data set's schema and versions, from the work tree or a git ref."""

from __future__ import annotations

from gitops.core.schema import Dataset
from gitops.core.workspace import Workspace


def show_dataset(ws: Workspace, name: str, rev: str | None = None) -> Dataset:
    """The data set as recorded in the work tree (or at git ``rev``)."""
    return ws.dataset(name) if rev is None else ws.dataset_at(name, rev)
