"""YAML in and out: one loader, line-aware, fast, and closed to YAML's dangerous corners.

Registry files are written by people, so a loaded mapping remembers the line of each key
(:class:`LineMap`) and validation errors can point at ``file:line``. PyYAML keeps the last of two
equal keys without a word; here a duplicate key is an error, because a duplicated version id in
``model.yaml`` would otherwise silently drop a version.

The loader builds documents straight from libyaml's event stream (the C parser's events): no node
graph is composed and no Python constructor walks it, which halves the cost of a ``model.yaml`` with
a thousand versions. Scalars are resolved with PyYAML's own implicit resolvers
and ``SafeConstructor``, so values are exactly what ``yaml.safe_load`` gives. It refuses what
registry files never need and attackers love: anchors and aliases (the "billion laughs"), merge
keys, tags beyond the plain scalar ones; and it bounds size (16 MiB), nesting (64 levels) and the
length of its messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev

from gitops.errors import Problem, RegistryError
from gitops.jsonio import FOREIGN_LINK, TooLarge, foreign_link, read_bounded, size_text

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_MESSAGE = 160  # characters of a parser's complaint or a key quoted in a message

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
# Explicit tags a document may carry: the plain scalar types (``!!str 007``). Everything else
# (``!!python/...``, ``!!binary``, ``!!set``, local ``!tags``) is refused.
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))
_RESOLVER = yaml.resolver.Resolver()
# first character -> the (tag, regexp) resolvers to try, in PyYAML's order (wildcards last)
_IMPLICIT = {first: resolvers + _RESOLVER.yaml_implicit_resolvers.get(None, [])
             for first, resolvers in _RESOLVER.yaml_implicit_resolvers.items() if first is not None}
_WILDCARD = _RESOLVER.yaml_implicit_resolvers.get(None, [])
assert not _WILDCARD  # PyYAML has none; the inline fast path in _build relies on it
_SCALAR = ev.ScalarEvent
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CONSTRUCTORS = _CONSTRUCTOR.yaml_constructors


class LineMap(dict):
    """A dict that knows the 1-based line of itself and of each of its keys."""

    __slots__ = ("key_lines", "line")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: int | None = None
        self.key_lines: dict[Any, int] = {}


class YamlError(RegistryError):
    """A file is not YAML gitops accepts. ``line`` (1-based) and ``reason`` locate and name it."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        self.problem = Problem(source, line, None, reason)
        super().__init__(str(self.problem))


class _Refused(Exception):
    def __init__(self, reason: str, mark: Any) -> None:
        self.reason = reason
        self.line = mark if isinstance(mark, int) else (mark.line + 1 if mark is not None else None)


def _clip(text: object) -> str:
    text = str(text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _resolve_plain(value: str) -> str:
    """The tag PyYAML's resolver gives an untagged plain scalar (``Resolver.resolve``)."""
    for tag, regexp in _IMPLICIT.get(value[:1] if value else "", _WILDCARD):
        if regexp.match(value):
            return tag
    return _STR


def _scalar(event: ev.ScalarEvent) -> Any:
    if event.anchor is not None:
        raise _Refused(f"anchors ('&{_clip(event.anchor)}') are not allowed", event.start_mark)
    tag = event.tag
    if tag is None or tag == "!":
        tag = _resolve_plain(event.value) if event.implicit[0] else _STR
    elif tag not in _SCALAR_TAGS:
        raise _Refused(f"the tag '{_clip(tag)}' is not allowed (plain YAML only: no tags, anchors or aliases)",
                       event.start_mark)
    if tag == _STR:
        return event.value
    if tag == _MERGE:
        raise _Refused("merge keys ('<<') are not allowed", event.start_mark)
    construct = _CONSTRUCTORS.get(tag)
    if construct is None:
        raise yaml.constructor.ConstructorError(None, None, f"could not determine a constructor for the tag "
                                                f"'{_clip(tag)}'", event.start_mark)
    return construct(_CONSTRUCTOR, yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style))


class _Frame:
    """An open mapping or sequence, and (for a mapping) the key waiting for its value."""

    __slots__ = ("container", "is_map", "key", "key_line", "want_key")

    def __init__(self, container: Any, is_map: bool) -> None:
        self.container, self.is_map = container, is_map
        self.key: Any = None
        self.key_line = 0
        self.want_key = True


def _open(event: Any, default_tag: str, depth: int) -> None:
    if event.anchor is not None:
        raise _Refused(f"anchors ('&{_clip(event.anchor)}') are not allowed", event.start_mark)
    if event.tag not in (None, "!", default_tag):
        raise _Refused(f"the tag '{_clip(event.tag)}' is not allowed (plain YAML only: no tags, anchors or "
                       "aliases)", event.start_mark)
    if depth >= MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)


def _build(text: str) -> Any:
    """The document in ``text``, built from parser events (see the module docstring)."""
    stack: list[_Frame] = []
    root: Any = None
    documents = 0
    parser = _Parser(text)
    next_event = parser.get_event
    try:
        while True:
            event = next_event()
            cls = event.__class__
            if cls is _SCALAR:
                value = event.value
                # the common case inline: an untagged scalar, quoted or plain with no resolver for its
                # first character, is a string (what _scalar would say, without the call)
                if event.tag is not None or event.anchor is not None or (
                        event.implicit[0] and (value[:1] if value else "") in _IMPLICIT):
                    value = _scalar(event)
            elif cls is ev.MappingStartEvent:
                _open(event, _MAP, len(stack))
                mapping = LineMap()
                mapping.line = event.start_mark.line + 1
                stack.append(_Frame(mapping, True))
                continue
            elif cls is ev.SequenceStartEvent:
                _open(event, _SEQ, len(stack))
                stack.append(_Frame([], False))
                continue
            elif cls is ev.MappingEndEvent or cls is ev.SequenceEndEvent:
                value = stack.pop().container
            elif cls is ev.AliasEvent:
                raise _Refused(f"aliases ('*{_clip(event.anchor)}') are not allowed", event.start_mark)
            elif cls is ev.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise yaml.composer.ComposerError("expected a single document in the stream", None,
                                                      "but found another document", event.start_mark)
                continue
            elif event is None or cls is ev.StreamEndEvent:
                return root
            else:  # stream start, document end
                continue
            if not stack:
                root = value
                continue
            frame = stack[-1]
            if not frame.is_map:
                frame.container.append(value)
            elif frame.want_key:
                try:
                    hash(value)
                except TypeError:
                    raise yaml.constructor.ConstructorError(None, None, "found an unhashable key",
                                                            event.start_mark) from None
                frame.key, frame.key_line, frame.want_key = value, event.start_mark.line + 1, False
            else:
                mapping, key = frame.container, frame.key
                if key in mapping:
                    raise _Refused(f"key '{_clip(key)}' appears twice", frame.key_line)
                mapping[key] = value
                mapping.key_lines[key] = frame.key_line
                frame.want_key = True
    finally:
        parser.dispose()


def loads(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names the file in errors (:class:`YamlError`, a RegistryError)."""
    if len(text) > MAX_BYTES:
        raise YamlError(source, None, f"larger than {size_text(MAX_BYTES)}; refusing to parse it")
    try:
        return _build(text)
    except _Refused as exc:
        raise YamlError(source, exc.line, exc.reason) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(source, mark.line + 1 if mark else None, f"not valid YAML ({_clip(problem)})") from None
    except yaml.YAMLError as exc:
        raise YamlError(source, None, f"not valid YAML ({_clip(exc)})") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. a timestamp like 2024-13-45 that PyYAML tries and fails to build
        raise YamlError(source, None, f"not valid YAML ({_clip(exc)})") from None


def load_file(path: Path, source: str | None = None, *, max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse one YAML file of at most ``max_bytes`` (read bounded, so a device or a pipe
    that never ends is refused too)."""
    name = source or str(path)
    if foreign_link(Path(path)):
        raise YamlError(name, None, FOREIGN_LINK)
    try:
        text = read_bounded(path, max_bytes, name).decode("utf-8")
    except TooLarge:
        raise YamlError(name, None, f"larger than {size_text(max_bytes)}; refusing to parse it") from None
    except FileNotFoundError:
        raise YamlError(name, None, "file not found") from None
    except IsADirectoryError:
        raise YamlError(name, None, "a directory, not a file") from None
    except UnicodeDecodeError:
        raise YamlError(name, None, "not UTF-8 text") from None
    except OSError as exc:
        raise YamlError(name, None, f"cannot be read ({_clip(exc.strerror or exc)})") from None
    return loads(text, name)


def plain(data: Any) -> Any:
    """Plain dicts and lists in place of :class:`LineMap` and tuples (for dumping, hashing, JSON)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain(v) for v in data]
    return data


def dumps(data: Any) -> str:
    """YAML text for people: block style, keys in the order given."""
    return yaml.dump(
        plain(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, never half."""
    import tempfile  # late: reading commands never write, and tempfile costs ~10 ms to import

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_problem(path: Path) -> str | None:
    """Why :func:`write_atomic` (or any writer that makes missing directories) could not write
    ``path``, or None. Commands check their output files with it before the work whose result they
    hold, so a typo in ``--out`` costs nothing instead of an evaluation."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a directory"
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so {path} cannot be made"
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{path} is not writable"
    return None


def dump_file(path: Path, data: Any) -> None:
    write_atomic(path, dumps(data))
