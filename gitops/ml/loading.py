"""Load model weights the ordinary way: ``from_pretrained`` on a local directory.

Three shapes exist in a registry: merged Hugging Face weights (``hf``), a PEFT LoRA adapter on a
base model (``peft-lora``) and CTranslate2 directories (opened by :mod:`gitops.ml.backends`).
Every failure a user can cause (missing directory, missing base, unreadable config) becomes a
:class:`NotFoundError` or :class:`ConfigError` naming the path, never a library traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gitops.errors import ConfigError, NotFoundError

# Written by gitops' CTranslate2 conversion next to the model: how it was made (the ct2 files do not say).
CT2_META_FILE = "gitops-convert.json"
# Files that make a directory self-contained for AutoTokenizer (whichever ones exist are copied).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja")


def require_model_dir(path: Path, what: str = "Model") -> Path:
    """Return ``path`` if it is a directory holding ``config.json``; else raise NotFoundError."""
    path = Path(path)
    if not path.is_dir():
        raise NotFoundError(f"{what} directory {path} does not exist.")
    if not (path / "config.json").is_file():
        raise NotFoundError(f"{what} directory {path} has no config.json; it is not a model.")
    return path


def adapter_base(adapter_dir: Path, base_dir: Path | str | None = None) -> Path:
    """The base model directory of a LoRA adapter: ``base_dir`` if given, else the one the
    adapter's ``adapter_config.json`` records (``base_model_name_or_path``)."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    if not cfg_path.is_file():
        raise NotFoundError(f"Adapter directory {adapter_dir} has no adapter_config.json.")
    if base_dir is not None:
        return require_model_dir(Path(base_dir), "Base model")
    try:
        recorded = json.loads(cfg_path.read_text())["base_model_name_or_path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{cfg_path} is not a valid adapter config ({exc}).") from exc
    if not recorded or not Path(recorded).is_dir():
        raise NotFoundError(f"The base model '{recorded}' recorded in {cfg_path} is not a local "
                            "directory; pass the base model directory explicitly.")
    return require_model_dir(Path(recorded), "Base model")


def load_tokenizer(path: Path, fallback: Path | None = None):
    """The tokenizer saved in ``path`` (or in ``fallback`` when ``path`` has none), padding left."""
    from transformers import AutoTokenizer

    src = Path(path)
    if not (src / "tokenizer_config.json").is_file() and fallback is not None:
        src = Path(fallback)
    try:
        tok = AutoTokenizer.from_pretrained(str(src))
    except Exception as exc:  # corrupt files raise many types; one error out
        raise NotFoundError(f"No usable tokenizer in {src} ({exc}).") from exc
    tok.padding_side = "left"  # decoder-only models generate after the prompt's last token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_hf(path: Path, device: str = "cpu"):
    """Load merged weights and their tokenizer: ``(model, tokenizer)``, model in eval mode."""
    from transformers import AutoModelForCausalLM

    path = require_model_dir(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path))
    except Exception as exc:  # e.g. SafetensorError for a truncated file
        raise NotFoundError(f"Cannot load model weights from {path} ({exc}).") from exc
    return model.to(device).eval(), load_tokenizer(path)


def load_peft(adapter_dir: Path, base_dir: Path | str | None = None, device: str = "cpu"):
    """Load a LoRA adapter on its base: ``(PeftModel, tokenizer)``, in eval mode.

    The tokenizer comes from the adapter directory when training saved one there (it may have
    added tokens), else from the base.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    base = adapter_base(adapter_dir, base_dir)
    model, _ = load_hf(base, device)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except Exception as exc:  # shape mismatch, bad safetensors, bad config
        raise ConfigError(f"Cannot load the adapter in {adapter_dir} on {base} ({exc}).") from exc
    return peft_model.to(device).eval(), load_tokenizer(adapter_dir, fallback=base)


def merge_adapter(adapter_dir: Path, base_dir: Path | None, out_dir: Path) -> Path:
    """Fold a LoRA adapter into its base and save plain ``hf`` weights plus tokenizer in ``out_dir``.

    ``base_dir`` None means the base recorded in the adapter config.
    """
    model, tok = load_peft(adapter_dir, base_dir)
    merged = model.merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return out_dir


def copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    """Copy whichever tokenizer files ``src`` has into ``dst``; returns the names copied."""
    copied = []
    for name in TOKENIZER_FILES:
        if (Path(src) / name).is_file():
            shutil.copy2(Path(src) / name, Path(dst) / name)
            copied.append(name)
    return copied
