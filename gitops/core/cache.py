"""The one content cache of parsed registry files (model.yaml, data set files).

Parsing a ``model.yaml`` with a thousand versions costs ~0.1 s; reading its validated form back as
JSON costs a few ms. An entry is keyed by the file's content digest (sha256) plus a *fingerprint*
of the code that validated it (the gitops version and the bytes of the schema, validation and YAML
modules), so an edited file or an upgraded gitops can never see a stale parse. Only files that
validated cleanly are cached (invalid ones are parsed again so their messages keep their lines);
files under 4 KiB are not cached at all (parsing them is faster than a lookup).

Layout: one *chain* file per registry file, ``<git dir>/gitops/cache/<hash of its path>.chain``.
Line one is a snapshot (fingerprint, digest, plain data); each later line records one version
appended to the text (``prev`` and ``digest`` of the text before and after, the version's plain
fields), which is what ``gitops register`` and ``gitops ingest`` do. So the thousandth append costs
one short line, not a rewrite, and a lookup replays the chain up to the line whose digest matches
the text (a rolled-back append simply stops the replay one line early and is cut off). A lookup
that had to replay more than :data:`COMPACT_AFTER` lines starts the chain afresh from what it
found, so reading stays one JSON document plus a few lines. Same text, same result: the cache
never disagrees with a fresh parse (a test checks).

The cache stores plain data, never pickles or dataclass dumps: what it reads back is rebuilt
through the schema's own constructors. Entries read or parsed are also kept in memory for the
rest of the process (:data:`MEMORY`, the last 64): keyed by content, they are as safe to share
between Workspaces as the disk layer, so a process that opens many (a server, a benchmark, a
test) does not replay a chain per Workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 3  # bump when the chain lines change meaning: an old file then simply misses
MIN_SIZE = 4096
COMPACT_AFTER = 64  # a lookup that replays more appended lines than this rewrites the chain as one snapshot


def digest(text: str) -> str:
    """The content key of a text (sha256; ~1 ms per MB)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_FINGERPRINT: str | None = None


def fingerprint() -> str:
    """The gitops version plus a hash of the code that decides what a parse returns."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from gitops import __version__, yamlio
        from gitops.core import plain, refs, schema, task
        from gitops.validation import declared, specs

        h = hashlib.sha256(__version__.encode())
        for module in (schema, plain, refs, task, specs, declared, yamlio):  # validation is a package: its modules
            h.update(Path(str(module.__file__)).read_bytes())
        _FINGERPRINT = h.hexdigest()[:16]
    return _FINGERPRINT


@dataclass
class Entry:
    """A cached parse: the plain data, and whether ``versions:`` is the text's last block."""

    data: dict[str, Any]
    versions_last: bool


class Memory:
    """The entries of this process, least recently used first out (keyed by path and digest)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()

    def get(self, key: tuple[str, str]) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def __setitem__(self, key: tuple[str, str], entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything: what a new process starts with."""
        self._entries.clear()


MEMORY = Memory(64)


class ContentCache:
    """Parsed registry files by content, on disk under ``directory`` (None: a read-only or
    bare checkout, where nothing is written) and in this process's :data:`MEMORY`."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory = MEMORY

    def _chain(self, rel: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / (hashlib.sha1(rel.encode()).hexdigest()[:20] + ".chain")

    def get(self, rel: str, text: str, key: str, *, current: bool = True) -> Entry | None:
        """The cached parse of ``text`` (whose digest is ``key``), or None. ``current``: the text is
        the work tree's, so chain lines past it are from a rolled-back append and are cut off."""
        found = self._memory.get((rel, key))
        if found is not None or len(text) < MIN_SIZE:
            return found
        path = self._chain(rel)
        if path is None:
            return None
        try:
            raw = path.read_bytes()
            found, end, replayed = _replay(raw, key)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # no cache, or one this code cannot read: parse instead
        if found is None:
            return None
        self._memory[(rel, key)] = found
        if current and replayed > COMPACT_AFTER:  # a long chain: start the next one from here
            self.put(rel, text, key, found)
        elif current and end < len(raw):  # lines past the match belong to a rolled-back append: drop them
            with contextlib.suppress(OSError):
                os.truncate(path, end)
        return found

    def versions_last(self, rel: str, key: str) -> bool | None:
        """Whether ``versions:`` ends the text with digest ``key``, when this Workspace parsed it."""
        entry = self._memory.get((rel, key))
        return entry.versions_last if entry is not None else None

    def put(self, rel: str, text: str, key: str, entry: Entry, *, persist: bool = True) -> None:
        """Remember a full parse (``persist``: also on disk, replacing the chain: one snapshot line)."""
        self._memory[(rel, key)] = entry
        path = self._chain(rel)
        if not persist or path is None or len(text) < MIN_SIZE:
            return
        head = {"format": FORMAT, "fingerprint": fingerprint(), "digest": key, "last": entry.versions_last,
                "data": entry.data}
        _write(path, json.dumps(head, separators=(",", ":")) + "\n", replace=True)

    def append(self, rel: str, prev: str, key: str, text: str, version_id: str, fields: list[Any]) -> None:
        """Remember that ``version_id`` was appended to the text ``prev``, giving ``text`` (digest ``key``):
        one line added to the chain (a snapshot when there is no chain yet)."""
        before = self._memory.get((rel, prev))
        if before is None:
            return  # the parse of ``prev`` is unknown here: the next reader parses the new text
        after = Entry({**before.data, "versions": {**before.data["versions"], version_id: fields}}, True)
        path = self._chain(rel)
        if path is None or len(text) < MIN_SIZE or not path.is_file():
            self.put(rel, text, key, after)
            return
        self._memory[(rel, key)] = after
        line = {"prev": prev, "digest": key, "id": version_id, "fields": fields}
        _write(path, json.dumps(line, separators=(",", ":")) + "\n", replace=False)


def _replay(raw: bytes, key: str) -> tuple[Entry | None, int, int]:
    """The entry after the chain line whose digest is ``key``, the byte offset past that line, and
    how many appended lines were replayed to reach it."""
    lines = raw.split(b"\n")
    head = json.loads(lines[0])
    if head.get("format") != FORMAT or head.get("fingerprint") != fingerprint():
        return None, 0, 0
    data, at, offset = head["data"], head["digest"], len(lines[0]) + 1
    if at == key:
        return Entry(data, head["last"]), offset, 0
    steps = _steps([line for line in lines[1:] if line])
    versions = dict(data["versions"])
    for n, (step, line) in enumerate(steps, start=1):
        if step.get("prev") != at:
            break
        versions[step["id"]] = step["fields"]
        at, offset = step["digest"], offset + len(line) + 1
        if at == key:
            return Entry({**data, "versions": versions}, True), offset, n
    return None, 0, 0


def _steps(lines: list[bytes]) -> list[tuple[dict, bytes]]:
    """The appended lines decoded: in one call when all are whole (the usual case, ~5x faster than
    one call per line at a thousand lines), else one by one up to a torn line."""
    try:
        return list(zip(json.loads(b"[" + b",".join(lines) + b"]"), lines))
    except ValueError:
        out = []
        for line in lines:
            try:
                out.append((json.loads(line), line))
            except ValueError:  # a torn last line (killed mid-append)
                break
        return out


def _write(path: Path, text: str, *, replace: bool) -> None:
    """Write a chain (atomically when replacing; an append is one short write). A read-only
    checkout still works, just slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if replace:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        else:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(text)
    except OSError:
        pass
