"""Reading input files (delimited text, JSON Lines, Parquet) and checking every row against a data set's schema.

Rows keep where they came from (file and line) so a bad row is reported as ``file:line: reason``.
Delimited text (CSV, TSV, PSV, or any delimiter given) arrives as text and is converted to the
declared column type; JSON and Parquet values must already have that type (an ``int`` column does
not accept ``"3"`` from JSON: it would hide a broken producer).

Delimited files are read as pandas and spreadsheets write them: RFC 4180 quoting, an optional UTF-8
byte order mark, and a header whose first cell may be empty. That empty cell is the index pandas
writes with ``DataFrame.to_csv()``: its column is row numbers, not data, and is ignored. Any other
empty header cell is an error.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import jsonio
from gitops.core.schema import SPLIT_KEY, Dataset
from gitops.data.normalize import normalizer
from gitops.errors import DataError, shown
from gitops.validation import finite_number

FORMATS = {".csv": "delimited", ".tsv": "delimited", ".tab": "delimited", ".psv": "delimited",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".psv": "|"}
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "pipe": "|", "semicolon": ";"}
_INT_RE = re.compile(r"[+-]?[0-9]+")
MAX_FILE_BYTES = 256 * 1024 * 1024  # one input file; every row of it is held in memory while it is checked
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # an int column holds what Parquet, pandas and torch call int64
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}


@dataclass
class RawRow:
    """One input row before validation: its place in the file and its values (or why it is unreadable)."""

    source: str
    line: int
    values: dict[str, Any] | None
    where: str = ""
    problem: str | None = None
    from_text: bool = False  # values are text to convert (delimited files), not typed (JSON, Parquet)

    @property
    def location(self) -> str:
        return self.where or f"{self.source}:{self.line}"


@dataclass
class Reject:
    """A row refused by validation, with the reason a user reads."""

    source: str
    line: int
    location: str
    reason: str
    values: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.source, "line": self.line, "reason": self.reason, "row": self.values}


@dataclass
class Checked:
    """Validation result of one or more files: typed good rows (with their origin) and rejects."""

    good: list[tuple[RawRow, dict[str, Any]]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def parse_delimiter(text: str) -> str:
    """The one-character delimiter ``text`` names (``tab`` or ``\\t`` for a tab, ``;``, ``|`` ...)."""
    value = DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1 or value in '"\r\n' or value.isalnum():
        raise DataError(f"delimiter {text!r} must be one character (or 'tab'), not a letter, digit, quote "
                        "or line break")
    return value


def file_format(path: Path, delimiter: str | None = None) -> tuple[str, str | None]:
    """How to read ``path``: ``("delimited", delimiter)``, ``("jsonl", None)`` or ``("parquet", None)``.

    The extension decides (.csv, .tsv/.tab, .psv, .jsonl, .parquet); a ``delimiter`` reads every file
    that is not JSON Lines or Parquet as delimited text with that delimiter (a ``.txt``, a ``;`` CSV)."""
    suffix = path.suffix.lower()
    fmt = FORMATS.get(suffix)
    if delimiter is not None and fmt not in ("jsonl", "parquet"):
        return "delimited", delimiter
    if fmt is None:
        raise DataError(f"{path}: unknown input format '{path.suffix}' (use .csv, .tsv, .psv, .jsonl or "
                        ".parquet, or give a delimiter for other delimited text)")
    return fmt, DELIMITERS.get(suffix)


def check_file(path: Path, delimiter: str | None = None) -> tuple[str, str | None]:
    """The file's format and delimiter, once it is known to exist, be a file, be small enough and
    have a format we read: what every input is checked for before any of them is read."""
    try:
        found = path.is_file()
    except OSError as exc:  # a name too long for the file system, say: pathlib passes that on
        raise DataError(f"{shown(str(path), 200)}: cannot read it ({exc.strerror or exc})") from None
    if not found:
        raise DataError(f"{shown(str(path), 200)}: file not found")
    fmt, delim = file_format(path, delimiter)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path}: larger than {jsonio.size_text(MAX_FILE_BYTES)}; split it into smaller "
                        "batches and ingest each")
    return fmt, delim


def read_file(path: Path, delimiter: str | None = None) -> list[RawRow]:
    """Every row of an input file, untyped, with its line (delimited, JSONL) or row number (Parquet)."""
    fmt, delim = check_file(path, delimiter)
    try:
        if fmt == "delimited":
            return _read_delimited(path, delim or ",")
        if fmt == "jsonl":
            return _read_jsonl(path)
        return _read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not valid delimited text ({exc})") from None


def _read_delimited(path: Path, delimiter: str) -> list[RawRow]:
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: a byte order mark is dropped
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return []
        header, index = _header(path, [h.strip() for h in header])
        if twice := _twice(header):
            # csv.DictReader-like zipping keeps the last of two equal columns: refuse, do not guess
            raise DataError(f"{path}:{reader.line_num}: column '{shown(twice[0])}' appears twice in the header")
        width = len(header) + index
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1  # a quoted field may span lines: report where it starts
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != width:
                rows.append(RawRow(str(path), line, None, problem=f"has {len(fields)} fields, the header has {width}",
                                   from_text=True))
                continue
            rows.append(RawRow(str(path), line, dict(zip(header, fields[index:])), from_text=True))
    return rows


def _twice(names: list[str]) -> list[str]:
    """The names that appear more than once, sorted."""
    return sorted(name for name, n in Counter(names).items() if n > 1)


def _header(path: Path, header: list[str]) -> tuple[list[str], int]:
    """The column names, and 1 when the first (empty) column is pandas' index, to be ignored."""
    index = int(len(header) > 1 and header[0] == "")
    names = header[index:]
    if "" in names:
        raise DataError(f"{path}: header cell {names.index('') + 1 + index} is empty; name every column "
                        "(only the first cell may be empty: that is the index pandas writes, and it is ignored)")
    return names, index


def _read_jsonl(path: Path) -> list[RawRow]:
    rows = []
    with path.open(encoding="utf-8-sig") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                value = jsonio.loads(text, str(path), number)
            except jsonio.JsonError as exc:
                rows.append(RawRow(str(path), number, None, problem=exc.reason))
                continue
            if not isinstance(value, dict):
                rows.append(RawRow(str(path), number, None, problem="is not a JSON object"))
                continue
            rows.append(RawRow(str(path), number, value))
    return rows


def _read_parquet(path: Path) -> list[RawRow]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is in the ml extra
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
        raise DataError(f"{path}: not a readable Parquet file ({shown(exc, 200)})") from None
    if twice := _twice(table.column_names):
        raise DataError(f"{path}: column '{shown(twice[0])}' appears twice in the Parquet schema")
    return [RawRow(str(path), i, row, where=f"{path}: row {i}")
            for i, row in enumerate(table.to_pylist(), start=1)]


def _convert(value: Any, typ: str, from_text: bool) -> tuple[Any, str | None]:
    """``value`` as ``typ``, or the reason it is not one."""
    if value is None or (from_text and value == "" and typ != "string"):
        return None, "no value"
    if typ == "string":
        return (value, None) if isinstance(value, str) else (None, f"{_show(value)} is not a string")
    if from_text:
        return _from_text(value, typ)
    if typ == "bool":
        return (value, None) if isinstance(value, bool) else (None, f"{_show(value)} is not true or false")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{_show(value)} is not a number"
    if typ == "int":
        if not isinstance(value, int):
            return None, f"{_show(value)} is not a whole number"
        return (value, None) if INT_MIN <= value <= INT_MAX else (None, f"{_show(value)} is out of range (int64)")
    return (float(value), None) if finite_number(value) else (None, f"{_show(value)} is not a finite number")


def _from_text(value: str, typ: str) -> tuple[Any, str | None]:
    """A CSV field (text) as ``typ``, or why it is not one."""
    text = value.strip()
    if typ == "int":
        if not _INT_RE.fullmatch(text):
            return None, f"'{shown(value)}' is not a whole number"
        if len(text.lstrip("+-")) > 19:  # before int(): 4,300+ digits raise, and int64 has 19
            return None, f"'{shown(value)}' is out of range (int64)"
        number = int(text)
        return (number, None) if INT_MIN <= number <= INT_MAX else (None, f"'{shown(value)}' is out of range (int64)")
    if typ == "float":
        try:
            real = float(text)
        except ValueError:
            return None, f"'{shown(value)}' is not a number"
        return (real, None) if math.isfinite(real) else (None, f"'{shown(value)}' is not a finite number")
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE, None
    return None, f"'{shown(value)}' is not true or false"


def _show(value: Any) -> str:
    """A JSON value as a rejection quotes it: short, whatever its size or depth."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return shown(value) if isinstance(value, int) and not isinstance(value, bool) else shown(repr(value))


def check_row(row: RawRow, dataset: Dataset, clean: Callable[[str], str] | None = None
              ) -> tuple[dict[str, Any] | None, str | None]:
    """The row with typed values in schema order, or None and the first reason it is invalid.

    ``clean`` (the data set's normalisation) is applied to every string value first. When the data
    set names a split column, the row also carries ``split``: the split it names, or None for
    "decide by the key hash"."""
    if row.values is None:
        return None, row.problem or "unreadable row"
    split_column = dataset.split_column
    extra = [k for k in row.values if k not in dataset.columns and k != split_column]
    if extra:
        return None, f"unexpected column '{shown(extra[0])}' (columns: {', '.join(dataset.columns)})"
    typed: dict[str, Any] = {}
    for col, typ in dataset.columns.items():
        if col not in row.values:
            return None, f"missing column '{col}'"
        value, problem = _convert(row.values[col], typ, row.from_text)
        if problem:
            return None, f"column '{col}': {problem}"
        typed[col] = clean(value) if clean is not None and isinstance(value, str) else value
    text = typed.get(dataset.text_field)
    if not isinstance(text, str) or not text.strip():
        return None, f"empty text in '{dataset.text_field}'"
    if any(isinstance(typed[k], str) and not typed[k].strip() for k in dataset.key):
        return None, f"empty key ({', '.join(dataset.key)})"
    if split_column:
        split, problem = _named_split(row.values.get(split_column), list(dataset.splits))
        if problem:
            return None, f"column '{split_column}': {problem}"
        typed[SPLIT_KEY] = split
    return typed, None


def _named_split(value: Any, splits: list[str]) -> tuple[str | None, str | None]:
    """The split a split-column value names (None when empty), or why it names none."""
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, f"{str(value)[:40]!r} is not a split name"
    name = value.strip()
    if not name:
        return None, None
    if name not in splits:
        return None, (f"'{value[:40]}' is not a split of this data set ({', '.join(splits)}; leave it empty "
                      "to split by key hash)")
    return name, None


def check_files(paths: list[Path], dataset: Dataset, delimiter: str | None = None) -> Checked:
    """Read and validate every row of every file (``delimiter``: see :func:`file_format`)."""
    result = Checked()
    clean = normalizer(dataset.normalize)
    for path in paths:
        for row in read_file(path, delimiter):
            typed, problem = check_row(row, dataset, clean)
            if problem is not None or typed is None:
                result.rejects.append(Reject(row.source, row.line, row.location, problem or "", row.values))
            else:
                result.good.append((row, typed))
    return result


def write_rejects(checked: Checked) -> list[Path]:
    """Write each input's rejects as ``<file>.rejects.jsonl`` beside it; return the paths written."""
    by_source: dict[str, list[Reject]] = {}
    for rej in checked.rejects:
        by_source.setdefault(rej.source, []).append(rej)
    written = []
    for source, rejects in by_source.items():
        out = Path(source).with_name(Path(source).name + ".rejects.jsonl")
        text = "".join(json.dumps(r.to_dict(), ensure_ascii=False, default=str) + "\n" for r in rejects)
        out.write_text(text, encoding="utf-8")
        written.append(out)
    return written


def summary(rejects: list[Reject], shown: int = 5) -> tuple[str, list[str]]:
    """One sentence and the first few problems, for an error or a report. Rows refused for the same
    reason are one problem, however many they are (a header with one extra column refuses every row
    of its file: one sentence with the first line and the count, not a line per row)."""
    files = sorted({r.source for r in rejects})
    groups: dict[str, list[Reject]] = {}  # reason -> its rows, in the order first seen
    for rej in rejects:
        groups.setdefault(rej.reason, []).append(rej)
    count = f"{len(rejects)} invalid row{'s' if len(rejects) != 1 else ''} in {', '.join(files)}"
    first = rejects[0]
    if len(groups) == 1 and len(rejects) > 1:
        return f"{count}, all for one reason (first at {first.location}): {first.reason}", []
    lines = [f"{rows[0].location}: {reason}" + (f" (and {len(rows) - 1} more rows like it)" if len(rows) > 1 else "")
             for reason, rows in list(groups.items())[:shown]]
    if len(groups) > shown:
        rest = sum(len(rows) for rows in list(groups.values())[shown:])
        lines.append(f"... and {rest} more rows with other problems")
    return f"{count} (first at {first.location}: {first.reason})", lines
