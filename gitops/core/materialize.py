"""A registered version's files on disk: fetched through DVC, verified against the registry's md5.

Evaluation, conversion, continued training and serving all start here, so a version whose files
were tampered with (or whose pointer disagrees with the registry) is refused before it is used.

Verification never trusts DVC: ``dvc pull`` stores what the remote sends under the name it asked
for without re-hashing it, and ``dvc status`` trusts the hashes its state database recorded at
checkout. So every file is hashed here, on every use: the ``.dir`` manifest in the cache must have
the md5 the registry records, and each file must have the md5 the manifest lists (no file missing,
none extra). A copy that fails right after a pull is removed, with its cache objects, so neither
the next command nor a person picks it up.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gitops.adapters.dvc import file_md5, manifest_bytes, manifest_entries, read_pointer, tree_md5s
from gitops.core.schema import Version
from gitops.core.workspace import Workspace
from gitops.errors import IntegrityError, NotFoundError

_NAMED = 5  # files named in one error; the rest are counted


def version_files(ws: Workspace, model: str, version: Version) -> Path:
    """The weights directory of ``model@version``, pulled from the DVC remote if absent, every file
    hashed and checked against the registry's record before it is handed out."""
    rel_pointer = f"{version.path}.dvc"
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
        from hashlib import md5

        actual = md5(manifest_bytes(found)).hexdigest() + ".dir"
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
