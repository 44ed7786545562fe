"""LoRA versions merged into their base on demand, cached by (base md5, adapter md5).

A ``peft-lora`` version stores only its adapter. Whatever loads it (eval, convert, serve,
continued training) needs plain weights, so :func:`merged_dir` makes them once per machine: peft
loads the base and the adapter, ``merge_and_unload`` folds the adapter in, and ``save_pretrained``
writes the result (with the base's tokenizer) into ``<cache>/lora-<base>-<adapter>/``. The same
discipline as the GGUF cache: built in a temporary directory and renamed into place under a lock
(a crash or a concurrent build never leaves half an entry that is used), a marker written last
records the key and the md5 of every file, and every use re-hashes the files against it; an entry
that disagrees is rebuilt from the (verified) base and adapter, never used.

torch, transformers and peft are imported inside :func:`_build` only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gitops.adapters.dvcdir import file_md5
from gitops.core.localcache import build_once, cache_root, manifest_matches
from gitops.errors import ConfigError

MARKER = "gitops-merged.json"  # written last into an entry; its presence means finished
BUILDS = {"count": 0}  # merges this process has built (a reused entry does not count); tests read it


def merge_key(base_key: str, adapter_md5: str) -> str:
    """The cache key of an adapter (its version md5) on a base (its version md5, or the merge key of
    a base that is itself an adapter): ``<base>-<adapter>``, each 32 hex digits."""
    return f"{_short(base_key)}-{_short(adapter_md5)}"


def _short(key: str) -> str:
    """32 hex digits for a version md5 (``.dir`` dropped) or for a longer key (hashed)."""
    plain = key.removesuffix(".dir")
    if len(plain) == 32:
        return plain
    return hashlib.md5(plain.encode("ascii")).hexdigest()  # md5: a name, not a signature


def merged_dir(key: str, base_dir: Path, adapter_dir: Path, cache_dir: Path | None = None) -> Path:
    """The merged weights of the adapter in ``adapter_dir`` on the base in ``base_dir`` (both already
    verified by the caller), built on first use under ``key`` (:func:`merge_key`) and verified
    against its manifest on every use."""
    root = cache_root(cache_dir)
    if build_once(root, f"lora-{key}", lambda entry: _verified(entry, key),
                  lambda tmp: _build(Path(base_dir), Path(adapter_dir), tmp, key)):
        BUILDS["count"] += 1
    return root / f"lora-{key}"


def _verified(target: Path, key: str) -> bool:
    """True when ``target`` is a finished merge for ``key`` whose files match its manifest."""
    try:
        manifest = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return False
    return manifest_matches(target, MARKER, manifest.get("files"))


def _build(base_dir: Path, adapter_dir: Path, out: Path, key: str) -> None:
    """peft: base + adapter, merge_and_unload, save_pretrained (+ the base's tokenizer); manifest last."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        base = AutoModelForCausalLM.from_pretrained(str(base_dir))
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:  # shapes, a bad config, a bad file
        raise ConfigError(f"cannot merge the LoRA adapter in {adapter_dir} into its base {base_dir} "
                          f"({_first_line(exc)})") from None
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for path in out.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the cache may be shared
    files = {p.name: file_md5(p) for p in sorted(out.iterdir()) if p.is_file()}
    manifest = {"key": key, "files": files}
    (out / MARKER).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
