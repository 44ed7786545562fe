"""Rows to predict from a plain file (``gitops predict --input FILE``): new, unlabeled data.

A CSV, TSV, JSON Lines or Parquet file (read by :mod:`gitops.data.rows`, the reader ingest uses,
with its size bound) needs only the columns the task's input template names; the label column may
be missing, empty or null (such rows are predicted, not scored). Nothing is ingested or committed.
Each row is keyed by its place in the file (``line N`` of a text file, ``row N`` of a Parquet file),
and normalised as the variant's data set was at ingest, so the model reads what it was built on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitops.core.task import ClassificationTask
from gitops.data.rows import read_file
from gitops.errors import ConfigError, shown

SCALARS = (str, int, float, bool)


def is_unlabeled(value: Any) -> bool:
    """A label cell that says nothing: missing, null, or empty text."""
    return value is None or (isinstance(value, str) and not value.strip())


def read_input(path: Path, task: ClassificationTask, clean: Callable[[dict[str, Any]], dict[str, Any]],
               max_rows: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of ``path`` (the template's columns and the label, where present) and their keys;
    ConfigError naming the file, line and column for anything the task cannot read."""
    raws = read_file(Path(path))
    if not raws:
        raise ConfigError(f"{path} has no rows to predict")
    if len(raws) > max_rows:
        raise ConfigError(f"{path} has {len(raws)} rows; predict at most {max_rows} at once (split the file)")
    slots = task.slots()
    rows, keys = [], []
    for raw in raws:
        if raw.values is None:
            raise ConfigError(f"{raw.location}: {raw.problem}")
        row: dict[str, Any] = {}
        for column in slots:
            if column not in raw.values:
                raise ConfigError(f"{raw.location}: there is no column '{shown(column)}', which the task's input "
                                  f"template names (columns: {', '.join(shown(c, 40) for c in list(raw.values)[:20])})")
            value = raw.values[column]
            if value is not None and not isinstance(value, SCALARS):
                raise ConfigError(f"{raw.location}: column '{shown(column)}' must be text or a number")
            row[column] = value
        row = clean({**row, task.label: raw.values.get(task.label)})
        label = row[task.label]
        row[task.label] = None if is_unlabeled(label) else str(label)
        rows.append(row)
        keys.append(f"row {raw.line}" if raw.where else f"line {raw.line}")
    return rows, keys
