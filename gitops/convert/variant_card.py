"""The model card (``README.md``) of a converted version: what it is, and that it was never trained.

A conversion copies no training record of its source (no loss curve, no training metrics, no card):
those describe how the source was trained, and a reader of the variant's directory or report would
take them for the variant's own. The card says what the variant is and where its quality is
measured instead.
"""

from __future__ import annotations

from pathlib import Path

from gitops import yamlio
from gitops.core.schema import Version


def render(model: str, source: Version, quantization: str, ctranslate2_version: str | None) -> str:
    """Markdown text of the card of a CTranslate2 conversion of ``model@source``."""
    front = {"base_model": source.base_model or f"{model}@{source.id}", "library_name": "ctranslate2",
             "pipeline_tag": "text-generation", "tags": ["gitops", "ctranslate2", quantization]}
    engine = f"CTranslate2 {ctranslate2_version}" if ctranslate2_version else "CTranslate2"
    lines = [
        f"# CTranslate2 {quantization} conversion of {model}@{source.id}",
        "",
        f"CTranslate2 {quantization} conversion of {source.id}, not trained.",
        "",
        f"- Converted from: {model}@{source.id} (format `{source.format}`, md5 `{source.md5}`)",
        f"- Quantization: `{quantization}`, written by {engine}",
        f"- Training: none. The weights are {source.id}'s, converted and quantized; this version has no "
        f"training curve or training metrics of its own ({source.id}'s card says how {source.id} was made).",
        f"- Quality: `gitops eval` compares this version with {source.id} on the same holdout rows, so its "
        "report shows what the conversion cost (perplexity, size, speed).",
    ]
    return "---\n" + yamlio.dumps(front) + "---\n\n" + "\n".join(lines) + "\n"


def write(directory: Path, model: str, source: Version, quantization: str,
          ctranslate2_version: str | None = None) -> Path:
    """Write ``README.md`` into the converted model's ``directory``."""
    path = Path(directory) / "README.md"
    yamlio.write_atomic(path, render(model, source, quantization, ctranslate2_version))
    return path
