"""``gitops dataset create``: a data set's schema and split rule, as its own committed file."""

from __future__ import annotations

from gitops import yamlio
from gitops.core import layout, refs, schema
from gitops.core.schema import Dataset
from gitops.core.workspace import Workspace
from gitops.errors import DataError
from gitops.validation import Problems


def create_dataset(ws: Workspace, name: str, columns: dict[str, str], text_field: str, key: list[str],
                   splits: dict[str, float] | None = None, description: str = "", *,
                   split_column: str | None = None, normalize: list[str] | None = None) -> Dataset:
    """Write ``registry/datasets/<name>.yaml`` with the schema and split rule, and commit it.

    ``split_column``: an input column that names each row's split (the team's own holdout; rows
    without a value are split by key hash). ``normalize``: text normalisation steps applied at
    ingest (:data:`gitops.core.schema.NORMALIZE_STEPS`)."""
    rel = layout.dataset_file(name)
    if problem := refs.name_problem(name, "data set"):
        raise DataError(problem)
    dataset = Dataset(name=name, columns=dict(columns), text_field=text_field, key=list(key),
                      splits=dict(splits or schema.DEFAULT_SPLITS), description=description,
                      split_column=split_column, normalize=list(normalize or []))
    if text_field in columns and columns[text_field] != "string":
        raise DataError(f"text field '{text_field}' must be a string column, not {columns[text_field]}")
    # Validate through the same parser that reads the file back, so both agree on what is legal.
    problems = Problems()
    schema.parse_dataset(yamlio.loads(yamlio.dumps(dataset.header_dict()), rel), rel, name, problems)
    if problems:  # their lines are those of text never written: give the messages only
        reasons = problems.messages()
        raise DataError(f"data set '{name}' is invalid: {reasons[0]}", problems=reasons[1:])
    with ws.writing("dataset create"):
        if (ws.root / rel).exists():  # checked once a killed command's leftovers are settled
            raise DataError(f"data set '{name}' already exists ({rel})")
        with ws.transaction([rel], what=f"dataset create {name}"):
            layout.write_dataset(ws.root, dataset)
            ws.commit([rel], f"data: create data set {name} ({', '.join(columns)}; key {', '.join(key)})")
    return dataset
