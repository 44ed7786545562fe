"""JSON in: one loader for the JSON people and other programs hand to gitops, closed to its hostile corners.

The JSON that comes from outside (ingested JSON Lines rows, ``--metrics`` files, evaluation results
documents) goes through :func:`loads`, which is :func:`json.loads` with the holes a red team found
closed, each refused as one sentence naming the file and line (:class:`JsonError`):

- a key given twice (``json`` keeps the last one without a word, so ``{"text": "a", "text": "b"}``
  would ingest ``b``);
- numbers of more than :data:`MAX_DIGITS` digits (``int()`` of 4,300+ digits raises ``ValueError``;
  a 400-digit one overflows every float conversion downstream), ``NaN`` and ``Infinity``;
- strings holding a lone surrogate (``"\\ud800"`` decodes, then fails every UTF-8 write);
- nesting deeper than :data:`MAX_DEPTH` levels (100,000 brackets exhaust the recursion limit);
- more than :data:`MAX_BYTES` of text.

:func:`read_bounded` reads a file without ever holding more than the limit a caller sets, so a
sparse 100 GB file, ``/dev/zero`` or a pipe that never ends is refused, not read.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError, Problem, shown

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
MAX_DIGITS = 100


class TooLarge(GitopsError):
    """A file is larger than the limit its reader allows."""

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit = name, limit
        super().__init__(f"{shown(name, 200)}: larger than {size_text(limit)}; refusing to read it")


class JsonError(GitopsError):
    """A JSON text gitops refuses. ``line`` (1-based, when known) and ``reason`` locate and name it."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        self.problem = Problem(source, line, None, reason)
        super().__init__(str(self.problem))


class _Refused(Exception):
    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.key = reason, key


def size_text(n: int) -> str:
    """``16 MiB``, ``512 KiB``: a limit as a message states it."""
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


def read_bounded(path: Path, max_bytes: int, name: str | None = None) -> bytes:
    """The bytes of ``path``; :class:`TooLarge` when it holds more than ``max_bytes``. The size is
    checked before reading and the read stops one byte past the limit (for files that lie about it)."""
    with Path(path).open("rb") as fh:
        if os.fstat(fh.fileno()).st_size > max_bytes:
            raise TooLarge(name or str(path), max_bytes)
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(name or str(path), max_bytes)
    return data


def foreign_link(path: Path) -> bool:
    """Whether ``path`` lies inside a git work tree but leads, through a symbolic link, outside it.

    Config files a pull request can commit (``gitops.yaml``, a train or prompt config, ``.dvc``
    files) are read on CI runners and serving hosts: a link from one to ``~/.ssh/id_rsa`` or
    ``/etc/passwd`` would have its lines echoed back as "unknown key" errors. Readers refuse such a
    file unread. A link outside any work tree (a user's own files) is the user's business."""
    absolute = Path(os.path.abspath(path))
    try:
        target = absolute.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return True
    if target == absolute:
        return False  # no link on the way
    tree = next((d for d in absolute.parents if (d / ".git").exists()), None)
    if tree is None:
        return False
    root = tree.resolve()
    return target != root and root not in target.parents


FOREIGN_LINK = "a link to a file outside the repository; refusing to read it"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"key '{shown(key)}' appears twice", key)
            seen.add(key)
    return out


def _int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_DIGITS:
        raise _Refused(f"a number of {digits:,} digits (at most {MAX_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_DIGITS + 10:
        raise _Refused(f"a number written with {len(text):,} characters (at most {MAX_DIGITS})")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {shown(text, 40)} is out of range")
    return value


def _constant(text: str) -> Any:
    raise _Refused(f"not valid JSON ({text} is not a JSON number)")


def loads(text: str, source: str, line: int | None = None) -> Any:
    """Parse JSON ``text`` (see the module docstring); ``source`` and ``line`` (the line the text
    starts on, for one row of a JSON Lines file) name it in a :class:`JsonError`."""
    if len(text) > MAX_BYTES:
        raise JsonError(source, line, f"larger than {size_text(MAX_BYTES)}; refusing to parse it")
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                           parse_constant=_constant)
    except _Refused as exc:
        raise JsonError(source, line or _line_of_key(text, exc.key), exc.reason) from None
    except json.JSONDecodeError as exc:
        where = (line or 1) + exc.lineno - 1
        raise JsonError(source, where, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise JsonError(source, line, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # whatever else json's number or string handling refuses
        raise JsonError(source, line, f"not valid JSON ({shown(exc, 120)})") from None
    if reason := _walk(value):
        raise JsonError(source, line, reason)
    return value


def load_file(path: Path, max_bytes: int, source: str | None = None) -> Any:
    """Read (at most ``max_bytes``) and parse one JSON file; every failure is a GitopsError."""
    name = source or str(path)
    if foreign_link(Path(path)):
        raise JsonError(name, None, FOREIGN_LINK)
    try:
        data = read_bounded(path, max_bytes, name)
    except FileNotFoundError:
        raise JsonError(name, None, "file not found") from None
    except OSError as exc:
        raise JsonError(name, None, f"cannot be read ({shown(exc.strerror or exc, 120)})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError(name, None, f"not UTF-8 text (byte {exc.start})") from None
    return loads(text, name)


def _walk(value: Any) -> str | None:
    """Why a parsed value is refused (too deep, a lone surrogate), or None. Iterative: the value
    may be as deep as the recursion limit allowed the parser to go."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                return f"the text '{shown(node, 40)}' holds a lone surrogate, which is not Unicode text"
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        stack.extend((item, depth + 1) for item in items if isinstance(item, (str, dict, list)))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _line_of_key(text: str, key: str | None) -> int | None:
    """The line of the second ``"key":`` in ``text`` (where a duplicate was written), when findable."""
    if key is None:
        return None
    found = [m.start() for m in re.finditer(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:", text)]
    return text.count("\n", 0, found[1]) + 1 if len(found) > 1 else None
