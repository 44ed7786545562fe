"""Convert a model version to CTranslate2, the format the serving endpoint runs.

A ``peft-lora`` adapter is merged into its base first (CTranslate2 has no adapters), then
CTranslate2's own ``TransformersConverter`` writes the quantized model. The tokenizer files are
copied next to it so the output directory is self-contained: serving and evaluation need nothing
else.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from gitops.errors import ConvertError, GitopsError, NotFoundError
from gitops.ml.loading import CT2_META_FILE as META_FILE

# The weight types CTranslate2 can store; ``int8`` is the usual CPU serving choice.
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")
SOURCE_FORMATS = ("hf", "peft-lora")


def convert_to_ct2(src_dir: Path, out_dir: Path, quantization: str = "int8", *,
                   fmt: str = "hf", base_dir: Path | None = None) -> Path:
    """Convert ``src_dir`` (format ``fmt``) into a CTranslate2 model in ``out_dir``; returns it.

    ``base_dir`` is the base model of a ``peft-lora`` adapter (default: the one its
    ``adapter_config.json`` records). ``out_dir`` is replaced if it exists; every temporary file
    is made beside it (a caller that sweeps that directory sweeps them too). Every failure is a
    :class:`ConvertError` (or :class:`NotFoundError` for a missing input) saying why.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    _check_args(src_dir, quantization, fmt)
    if fmt == "hf":
        check_convertible(src_dir)  # before anything is loaded (a peft-lora base is checked once merged)
    if fmt == "peft-lora":
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-merge-", dir=out_dir.parent) as tmp:
            merged = _merge(src_dir, base_dir, Path(tmp))
            return _convert_hf(merged, out_dir, quantization, fmt)
    return _convert_hf(src_dir, out_dir, quantization, fmt)


def _check_args(src_dir: Path, quantization: str, fmt: str) -> None:
    if fmt == "ct2":
        raise ConvertError(f"{src_dir} is already in CTranslate2 format; convert its source "
                           "version (hf or peft-lora) instead.")
    if fmt not in SOURCE_FORMATS:
        raise ConvertError(f"Cannot convert format '{fmt}' to ct2; supported sources: "
                           f"{', '.join(SOURCE_FORMATS)}.")
    if quantization not in QUANTIZATIONS:
        raise ConvertError(f"Unsupported quantization '{quantization}'; choose one of: "
                           f"{', '.join(QUANTIZATIONS)}.")
    if not src_dir.is_dir():
        raise NotFoundError(f"Source directory {src_dir} does not exist.")
    marker = "adapter_config.json" if fmt == "peft-lora" else "config.json"
    if not (src_dir / marker).is_file():
        raise ConvertError(f"{src_dir} has no {marker}, so it is not a '{fmt}' model.")


def _merge(adapter_dir: Path, base_dir: Path | None, tmp: Path) -> Path:
    from gitops.ml.loading import merge_adapter

    try:
        return merge_adapter(adapter_dir, base_dir, tmp / "merged")
    except GitopsError as exc:
        raise ConvertError(f"Cannot merge adapter {adapter_dir} before conversion: "
                           f"{exc.message}") from exc


def _convert_hf(src: Path, out_dir: Path, quantization: str, fmt: str) -> Path:
    """Run CTranslate2's converter into a sibling temp dir, then move it into place."""
    from gitops.ml.loading import copy_tokenizer_files

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _run_converter(src, staging / "model", quantization)
        copy_tokenizer_files(src, staging / "model")
        _write_meta(staging / "model", quantization, fmt)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        (staging / "model").rename(out_dir)  # a crash never leaves a half-written out_dir
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _write_meta(dst: Path, quantization: str, fmt: str) -> None:
    """Record how the directory was made (the ct2 files themselves do not say)."""
    import ctranslate2

    meta = {"quantization": quantization, "source_format": fmt,
            "ctranslate2": ctranslate2.__version__}
    (dst / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def check_convertible(src: Path) -> str:
    """The model type of ``src``, or a ConvertError (one sentence) when this CTranslate2 cannot
    convert its architecture: no converter registered for it, or one known not to read what this
    transformers writes. Cheap (config only), so it runs before any weights are loaded or merged."""
    try:
        import ctranslate2
        import transformers
        from ctranslate2.converters import transformers as ct2_hf
    except ImportError as exc:
        raise ConvertError("CTranslate2 is not installed; install gitops-registry[ml].") from exc
    try:
        model_type = json.loads((Path(src) / "config.json").read_text())["model_type"]
        config_class = transformers.CONFIG_MAPPING[model_type].__name__
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # an unusual config: the converter itself will say what it thinks
    loaders = getattr(ct2_hf, "_MODEL_LOADERS", {})
    if loaders and config_class not in loaders:
        raise ConvertError(f"CTranslate2 {ctranslate2.__version__} cannot convert {model_type} models: it has "
                           f"no converter for {config_class}.")
    why = BROKEN_LOADERS.get(config_class)
    if why and _version(ctranslate2.__version__) <= BROKEN_UP_TO and _version(transformers.__version__) >= (5,):
        raise ConvertError(f"CTranslate2 {ctranslate2.__version__} cannot convert {model_type} models made by "
                           f"transformers {transformers.__version__}: {why}.")
    return model_type


# Converters CTranslate2 registers that fail on what transformers 5 writes (measured with
# ctranslate2 4.8.5 and transformers 5.24; both fail half way with an AttributeError/KeyError).
BROKEN_LOADERS = {
    "PhiConfig": "its Phi loader reads the old remote-code layout (n_layer, mixer.Wqkv), not PhiForCausalLM's",
    "Phi3Config": "its Phi3 loader reads rope_scaling['type'], which transformers 5 no longer writes",
}
BROKEN_UP_TO = (4, 8, 5)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _run_converter(src: Path, dst: Path, quantization: str) -> None:
    from ctranslate2.converters import TransformersConverter

    model_type = check_convertible(src)
    try:
        TransformersConverter(str(src)).convert(str(dst), quantization=quantization, force=True)
    except Exception as exc:  # the converter is an outside system: translate all
        # It raises ValueError for unsupported architectures, but also AttributeError/KeyError
        # when a transformers release renamed something the converter reads.
        what = f"this {model_type} model" if model_type else str(src)
        raise ConvertError(f"CTranslate2 could not convert {what} ({type(exc).__name__}: {exc}).") from exc
