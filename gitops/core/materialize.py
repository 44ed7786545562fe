"""A registered version's files on disk: fetched through DVC, verified against the registry's md5.

Evaluation, conversion, continued training and serving all start here, so a version whose files
were tampered with (or whose pointer disagrees with the registry) is refused before it is used.

Verification never trusts DVC: ``dvc pull`` stores what the remote sends under the name it asked
for without re-hashing it, and ``dvc status`` trusts the hashes its state database recorded at
checkout. So every file is hashed here, on every use: the ``.dir`` manifest in the cache must have
the md5 the registry records, and each file must have the md5 the manifest lists (no file missing,
none extra). A copy that fails right after a pull is removed, with its cache objects, so neither
the next command nor a person picks it up.

:func:`loadable` is the entry point for whatever loads a version's weights (eval, convert, serve,
continued training): a ``peft-lora`` version pinned to a base version comes back as merged ``hf``
weights, made on demand and cached by (base md5, adapter md5) in :mod:`gitops.core.merged`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gitops.adapters.dvc import read_pointer
from gitops.adapters.dvcdir import file_md5, manifest_entries, manifest_md5, tree_md5s
from gitops.core import layout, merged, refs
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, IntegrityError, NotFoundError

MAX_ADAPTER_DEPTH = 8  # adapters trained on adapters: a bound on the chain merged on demand

_NAMED = 5  # files named in one error; the rest are counted


def version_files(ws: Workspace, model: str, version: Version) -> Path:
    """The weights directory of ``model@version``, pulled from the DVC remote if absent, every file
    hashed and checked against the registry's record before it is handed out."""
    rel_pointer = layout.pointer(version)
    pointer = ws.root / rel_pointer
    if not pointer.exists():
        raise NotFoundError(f"{model}@{version.id}: {rel_pointer} is missing, so its weights are not tracked")
    recorded = read_pointer(pointer)["md5"]
    if recorded != version.md5:
        raise IntegrityError(f"{model}@{version.id}: {rel_pointer} records md5 {recorded}, but the registry "
                             f"records {version.md5}; refusing to use it")
    target = ws.root / version.path
    pulled = not target.exists()
    if pulled:
        ws.dvc.pull([rel_pointer])
    problems, bad_objects = verify_files(ws, version, target)
    if not problems:
        return target
    what = f"{model}@{version.id}: the files in {version.path} do not match the md5 the registry records " \
           f"({version.md5}): {_summary(problems)}"
    if pulled:
        _discard(target)
        ws.dvc.drop_objects(bad_objects)
        raise IntegrityError(f"{what}; the DVC remote sent corrupted data, so the pulled copy was removed "
                             "unused (repair the remote and pull again)")
    raise IntegrityError(f"{what}; refusing to use them (restore them with 'dvc checkout {rel_pointer}')")


def verify_files(ws: Workspace, version: Version, target: Path) -> tuple[list[str], list[str]]:
    """What is wrong with ``version``'s files at ``target`` (empty: nothing), and the md5s of the
    cache objects that hold bad data."""
    if not version.md5.endswith(".dir"):
        if not target.is_file():
            return [f"{target.name} is missing"], []
        actual = file_md5(target)
        return ([], []) if actual == version.md5 else ([f"{target.name} has md5 {actual}"], [version.md5])
    if not target.is_dir():
        return [f"{version.path} is not a directory"], []
    found = tree_md5s(target)
    manifest = ws.dvc.cached_object(version.md5)
    if manifest is None:  # files present but the cache cleared: the manifest they make must be the record
        actual = manifest_md5(found)
        return ([], []) if actual == version.md5 else (
            [f"together they make manifest {actual} (the recorded manifest is not in the DVC cache to name "
             "the file)"], [])
    actual = file_md5(manifest) + ".dir"
    if actual != version.md5:
        return [f"the .dir manifest in the DVC cache has md5 {actual}, not {version.md5}"], [version.md5]
    expected = manifest_entries(manifest.read_bytes())
    if expected is None:  # pragma: no cover - its md5 matched, so DVC wrote it
        return [f"the .dir manifest {version.md5} is not a DVC manifest"], []
    problems = [f"{rel} has md5 {found[rel]}, not {md5}" for rel, md5 in sorted(expected.items())
                if rel in found and found[rel] != md5]
    problems += [f"{rel} is missing" for rel in sorted(set(expected) - set(found))]
    problems += [f"{rel} is not in the manifest" for rel in sorted(set(found) - set(expected))]
    bad = [md5 for rel, md5 in expected.items() if rel in found and found[rel] != md5]
    return problems, bad


def _summary(problems: list[str]) -> str:
    more = len(problems) - _NAMED
    return "; ".join(problems[:_NAMED]) + (f"; and {more} more" if more > 0 else "")


def _discard(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


@dataclass(frozen=True)
class Loadable:
    """A version ready to load: ``files`` are its own (verified) files (an adapter's metrics, curve
    and card are there), ``weights`` the directory to load and ``format`` the format of that
    directory (``hf`` for a merged ``peft-lora`` version), ``key`` what identifies those weights
    (the version md5, or the merge key)."""

    files: Path
    weights: Path
    format: str
    key: str


def is_pinned(version: Version) -> bool:
    """A version holding a LoRA adapter pinned to its base version by md5: a ``peft-lora`` version
    gitops train registered (older adapters name a base by path or name and are loaded with it as
    they were), or a ``head`` version trained with LoRA layers (``adapter: {type: lora, head: true}``),
    whose weights are its base with the adapter merged in."""
    if not version.base_md5 or "@" not in (version.base_model or ""):
        return False
    return version.format == "peft-lora" or (version.format == "head" and has_adapter(version))


def has_adapter(version: Version) -> bool:
    """A head version whose LoRA layers were trained with it (its recorded config says so)."""
    adapter = (version.config or {}).get("adapter")
    return version.format == "head" and isinstance(adapter, dict) and adapter.get("type") == "lora"


def loadable(ws: Workspace, model: str, version: Version, *, _depth: int = 0) -> Loadable:
    """``model@version``'s weights as something to load: the version's verified files, or for a
    pinned ``peft-lora`` version its base (resolved the same way, verified against ``base_md5``)
    with the adapter merged in, from the merge cache."""
    files = version_files(ws, model, version)
    if not is_pinned(version):
        return Loadable(files, files, version.format, version.md5)
    label = f"{model}@{version.id}"
    if _depth >= MAX_ADAPTER_DEPTH:
        raise ConfigError(f"{label}: more than {MAX_ADAPTER_DEPTH} adapters stacked on each other; "
                          "register a merged version as a base")
    base_model, base = ws.registry().resolve(refs.parse_ref(version.base_model or "", require_ref=True))
    if base.md5 != version.base_md5:
        raise IntegrityError(f"{label} was trained on {version.base_model} with md5 {version.base_md5}, but the "
                             f"registry now records md5 {base.md5} for it; refusing to merge the adapter "
                             "into other weights")
    inner = loadable(ws, base_model.name, base, _depth=_depth + 1)
    if inner.format != "hf":
        raise ConfigError(f"{label}: its base {version.base_model} has format '{inner.format}'; a LoRA "
                          "adapter merges only into hf weights")
    key = merged.merge_key(inner.key, version.md5)
    return Loadable(files, merged.merged_dir(key, inner.weights, files), "hf", key)
