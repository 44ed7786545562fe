"""Where ``gitops predict`` writes: the resumable partial file and the output file.

- Every finished batch is appended (and fsynced) to ``OUT.partial.jsonl``: a header naming the run
  (variant, md5, data set or input file, split, decoding, a digest of every row's key and input),
  then one prediction per line, each with its row number and a digest of that row's key and input.
  A run started again with the same arguments resumes after the last whole line; a line whose row
  number, digest or values do not fit this run's rows (a fabricated line, one from other rows) makes
  the resume refuse, naming the line, rather than mix foreign predictions into the output.
- The output (Parquet, CSV or JSON Lines, by extension) is written atomically at the end. Per-label
  probabilities are an object in JSON Lines and a JSON string in CSV and Parquet. A CSV cell that a
  spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return, and not a plain number) is written with a leading apostrophe.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.errors import ConfigError

PARTIAL_VERSION = 3   # 3: per-row digests, the input text and per-label probabilities
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# what a resumed line brings from the killed run; the key, input and label come from this run's rows
MODEL_FIELDS = ("prediction", "matched", "raw_output", "prompt_tokens", "completion_tokens", "latency_ms",
                "probabilities")


def row_digest(key: str, text: str) -> str:
    """What binds a prediction to its row: a digest of the row's key and rendered input."""
    return hashlib.sha256(f"{key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def rows_digest(digests: list[str]) -> str:
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def partial_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".partial.jsonl")


def check_out(out: Path) -> None:
    """Refuse, before anything runs, an output path that cannot be written as a file."""
    out = Path(out)
    for path, what in ((out, "--out"), (partial_path(out), "its partial file")):
        if path.is_dir():
            raise ConfigError(f"--out {out}: {what} {path} is a directory; give a file name such as "
                              f"{out / 'predictions.jsonl'}")
    if problem := yamlio.output_problem(out):  # a parent that is a file, a directory not writable
        raise ConfigError(f"--out: {problem}")


def resume(partial: Path, header: dict[str, Any], digests: list[str], labels: list[str]) -> list[dict[str, Any]]:
    """The predictions a killed run left in ``partial`` (a torn last line is dropped), or []; each
    checked against this run's rows (``digests``, by row number) and ``labels``."""
    if not partial.exists():
        return []
    lines = partial.read_text(encoding="utf-8").split("\n")
    try:
        found = json.loads(lines[0])
    except json.JSONDecodeError:
        found = None
    if found != header:
        raise ConfigError(f"{partial} is left from a prediction of another variant, data set, split or decoding "
                          "(or of another input file, or an older gitops); remove it or choose another --out")
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for number, line in enumerate(lines[1:], start=2):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            break  # the line a kill cut short, and anything after it, is predicted again
        if why := _foreign(value, digests, labels, seen):
            raise ConfigError(f"{partial}:{number}: {why}; it was not written by this run over these rows, so it "
                              "cannot be resumed: remove the file (the rows are predicted again)")
        seen.add(value["row"])
        rows.append(value)
    keep = "\n".join(lines[:1 + len(rows)]) + "\n"
    with partial.open("r+b") as fh:
        fh.truncate(len(keep.encode("utf-8")))
    return rows


def _foreign(value: Any, digests: list[str], labels: list[str], seen: set[int]) -> str | None:
    """Why a partial line is not a prediction of this run, or None."""
    if not isinstance(value, dict):
        return "the line is not a prediction object"
    row = value.get("row")
    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < len(digests):
        return "its row number is not a row of this run"
    if row in seen:
        return f"row {row} appears twice"
    if value.get("digest") != digests[row]:
        return f"row {row}'s key and input differ from the row this run has there"
    if value.get("prediction") not in labels or not isinstance(value.get("matched"), bool):
        return f"row {row}'s prediction is not one of the labels"
    if not isinstance(value.get("raw_output"), str):
        return f"row {row} has no raw output"
    for name in ("prompt_tokens", "completion_tokens", "latency_ms"):
        number = value.get(name)
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number) or number < 0:
            return f"row {row}'s {name} is not a number of 0 or more"
    probs = value.get("probabilities")
    if probs is not None and (not isinstance(probs, dict) or list(probs) != labels
                              or not all(isinstance(p, (int, float)) and 0 <= p <= 1 for p in probs.values())):
        return f"row {row}'s probabilities are not one number from 0 to 1 per label"
    return None


def open_partial(partial: Path, header: dict[str, Any], *, fresh: bool):  # untyped: a text file
    partial.parent.mkdir(parents=True, exist_ok=True)
    sink = partial.open("w" if fresh else "a", encoding="utf-8")
    if fresh:
        sink.write(json.dumps(header) + "\n")
    return sink


def append(sink: Any, made: list[dict[str, Any]]) -> None:
    """One finished batch to the partial file, on the disk before the next batch starts."""
    sink.write("".join(json.dumps({k: m[k] for k in ("row", "digest", *MODEL_FIELDS)}) + "\n" for m in made))
    sink.flush()
    os.fsync(sink.fileno())


def write_predictions(out: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """``rows`` to ``out`` (Parquet, CSV or JSON Lines by extension), ``columns`` of each, atomically."""
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([_flat(r, columns) for r in rows]), tmp)
    elif suffix == ".csv":
        import csv

        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: inert(v) for k, v in _flat(r, columns).items()} for r in rows)
    else:
        tmp.write_text("".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, out)


def _flat(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A row for a table format: the probabilities as a JSON string (null stays null)."""
    out = {c: row.get(c) for c in columns}
    if out.get("probabilities") is not None:
        out["probabilities"] = json.dumps(out["probabilities"])
    return out


def inert(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula: text starting with ``= + - @``, a tab or a
    carriage return gets a leading apostrophe (OWASP's advice), unless it is a plain number."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
