"""The Hugging Face Hub, for what a config names by hub id (a semantic retrieval embedder).

The one border to the Hub: ``huggingface_hub.snapshot_download`` (imported late), first from the
local Hugging Face cache only, and from the network only when the cache lacks it. A snapshot is
returned with the commit it is at, so a caller can pin that commit and, the next time, ask for
exactly it. Callers hash what comes back before they use it (the Hub's own checks are not ours).
"""

from __future__ import annotations

import re
from pathlib import Path

from gitops.errors import NotFoundError, shown

# org/name as the Hub spells them (96 characters a side is the Hub's own bound)
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a hub id (``org/name``); it may still not exist."""
    return HUB_ID.fullmatch(text) is not None and ".." not in text


def snapshot(repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """The local directory of ``repo_id`` at ``revision`` (default: the main branch) and the commit
    it is at: from the local Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``) when it holds it,
    else downloaded (unless ``HF_HUB_OFFLINE`` is set). NotFoundError in one sentence otherwise."""
    if not is_hub_id(repo_id) or (revision is not None and REVISION.fullmatch(revision) is None):
        raise NotFoundError(f"'{shown(repo_id)}' is not a hub id of the form org/name")
    from huggingface_hub import snapshot_download

    where = f"{repo_id}" + (f" at revision {revision}" if revision else "")
    try:
        path = snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or a broken cache entry): try the Hub itself
        try:
            path = snapshot_download(repo_id, revision=revision)
        except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated: one sentence
            raise NotFoundError(f"the Hugging Face model {where} is not in the local Hugging Face cache and "
                                f"could not be downloaded ({type(exc).__name__}); download it once online, "
                                "or give a local directory") from None
    return Path(path), Path(path).name  # .../snapshots/<commit>
