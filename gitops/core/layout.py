"""Where registry files live, and the writers that change them.

Writers keep people's files readable: ``model.yaml`` and data set files gain a version by
*appending* text when ``versions:`` is their last block (the layout gitops writes), so existing
lines and comments are never rewritten and the thousandth version costs what the tenth did; the
content cache learns the appended version in one line (:meth:`ContentCache.append`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.core import refs
from gitops.core.cache import ContentCache, digest
from gitops.core.schema import Alias, Dataset, Model, Version

REGISTRY = "registry"
DATASETS = "datasets"


def model_file(name: str) -> str:
    return f"{REGISTRY}/{name}/model.yaml"


def alias_file(model: str, alias: str) -> str:
    return f"{REGISTRY}/{model}/aliases/{alias}.yaml"


def aliases_dir(model: str) -> str:
    return f"{REGISTRY}/{model}/aliases/"


def dataset_file(name: str) -> str:
    return f"{REGISTRY}/{DATASETS}/{name}.yaml"


def version_dir(model: str, version: str) -> str:
    return f"models/{model}/{version}"


POINTER_SUFFIX = ".dvc"


def pointer(version: Version | str) -> str:
    """The DVC pointer file of a version's files, ``models/m/v3.dvc``: ``version`` is the version's
    record or the path of its files (``models/m/v3``)."""
    path = version if isinstance(version, str) else version.path
    return f"{path}{POINTER_SUFFIX}"


_TOP_LEVEL = re.compile(r"^[^\s#][^\n]*", re.MULTILINE)


def versions_last(text: str) -> bool:
    """Whether the last top-level line of the YAML text is ``versions:`` (the layout appends rely on)."""
    top = _TOP_LEVEL.findall(text)
    return bool(top) and top[-1].rstrip() == "versions:"


def _text(header: dict[str, Any], versions: dict[str, Any]) -> str:
    """Header, then ``versions:`` last (empty, it reads ``versions:`` so the next version is appended)."""
    ordered = {vid: v.to_dict() for vid, v in sorted(versions.items(), key=lambda kv: refs.version_number(kv[0]))}
    return yamlio.dumps({**header, "versions": ordered}) if ordered else yamlio.dumps(header) + "versions:\n"


def write_model(root: Path, model: Model) -> str:
    """Write the whole ``model.yaml`` (header, then every version in order)."""
    rel = model_file(model.name)
    yamlio.write_atomic(root / rel, _text(model.header_dict(), model.versions))
    return rel


def write_dataset(root: Path, dataset: Dataset) -> str:
    """Write the whole data set file (header, then every version in order)."""
    rel = dataset_file(dataset.name)
    yamlio.write_atomic(root / rel, _text(dataset.header_dict(), dataset.versions))
    return rel


def alias_text(model: str, alias: Alias) -> tuple[str, str]:
    """The alias file's path and text."""
    data: dict[str, object] = {"version": alias.version}
    if alias.note:
        data["note"] = alias.note
    return alias_file(model, alias.name), yamlio.dumps(data)


def write_alias(root: Path, model: str, alias: Alias) -> str:
    rel, text = alias_text(model, alias)
    yamlio.write_atomic(root / rel, text)
    return rel


def append_version(root: Path, cache: ContentCache, rel: str, version: Any, fields: list[Any],
                   rewrite: Callable[[], object], prev: str | None = None) -> str:
    """Add ``version`` (a model or data set version; ``fields`` its plain data) to the file ``rel``;
    return the digest of the new text. ``prev`` is the digest of the file as it is, when known.

    Appended as text when ``versions:`` ends the file, else ``rewrite()`` writes the whole file
    (once: the rewrite puts ``versions:`` last; the next reader parses it and the cache follows).
    Atomic either way."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    prev = prev or digest(text)
    last = cache.versions_last(rel, prev)  # known from the parse: no need to scan 250 KB again
    if not (versions_last(text) if last is None else last):
        rewrite()
        return digest(path.read_text(encoding="utf-8"))
    entry = yamlio.dumps({version.id: version.to_dict()})
    new = text.rstrip("\n") + "\n" + "".join(f"  {line}\n" if line else "\n" for line in entry.splitlines())
    yamlio.write_atomic(path, new)
    key = digest(new)
    cache.append(rel, prev, key, new, version.id, fields)
    return key
