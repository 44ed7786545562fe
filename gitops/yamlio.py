"""YAML in and out, with line numbers for errors and no silent duplicate keys.

Registry files are written by people, so a loaded mapping remembers the line of each key
(:class:`LineMap`) and validation errors can point at ``file:line``. PyYAML keeps the last of two
equal keys without a word; here a duplicate key is an error, because a duplicated version id in
``model.yaml`` would otherwise silently drop a version.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gitops.errors import RegistryError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class LineMap(dict):
    """A dict that knows the 1-based line of itself and of each of its keys."""

    __slots__ = ("line", "key_lines")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: int | None = None
        self.key_lines: dict[Any, int] = {}


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        self.key, self.line = key, line


class _LineLoader(_Loader):  # type: ignore[misc, valid-type]
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark
            ) from None
        if key in result:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def loads(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names the file in errors."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as dup:
        raise RegistryError(f"{source}:{dup.line}: key '{dup.key}' appears twice") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        raise RegistryError(f"{where}: not valid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{source}: not valid YAML ({exc})") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. a timestamp like 2024-13-45 that PyYAML tries and fails to build
        raise RegistryError(f"{source}: not valid YAML ({exc})") from None


def load_file(path: Path, source: str | None = None) -> Any:
    """Read and parse one YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{source or path}: file not found") from None
    except UnicodeDecodeError:
        raise RegistryError(f"{source or path}: not UTF-8 text") from None
    return loads(text, source or str(path))


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


def dump_file(path: Path, data: Any) -> None:
    write_atomic(path, dumps(data))
