"""The Hugging Face model card (``README.md`` with YAML front matter) written next to the weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import yamlio

TEMPLATE_DIR = Path(__file__).parent / "templates"


@dataclass
class ModelCard:
    """What the card says; rendered by :func:`render` from ``templates/model_card.md.j2``."""

    model_name: str
    base_model: str
    dataset: str
    config: dict[str, Any]
    config_hash: str
    metrics: dict[str, float | None]
    version: str | None = None
    parent: str | None = None
    commit: str | None = None
    library_name: str = "transformers"  # "peft": the version is the adapter alone (format peft-lora)
    base_md5: str | None = None  # the md5 of the base version a peft-lora adapter is pinned to
    tags: list[str] = field(default_factory=lambda: ["gitops", "lora", "peft", "text-generation"])

    def front_matter(self) -> dict[str, Any]:
        """The card metadata the hub reads: base model, data sets, library, tags and model-index."""
        name, _, revision = self.dataset.partition("@")
        results = [{"type": "perplexity", "name": "Perplexity", "value": self.metrics["perplexity"]}
                   if "perplexity" in self.metrics else None,
                   {"type": "loss", "name": "Eval loss", "value": self.metrics["eval_loss"]}
                   if "eval_loss" in self.metrics else None]
        dataset = {"name": name, "type": name, "split": "valid"}
        if revision:
            dataset["revision"] = revision
        return {
            "base_model": self.base_model,
            "datasets": [self.dataset],
            "library_name": self.library_name,
            "pipeline_tag": "text-generation",
            "tags": list(self.tags),
            "model-index": [{
                "name": f"{self.model_name}@{self.version}" if self.version else self.model_name,
                "results": [{
                    "task": {"type": "text-generation", "name": "Text generation"},
                    "dataset": dataset,
                    "metrics": [r for r in results if r is not None],
                }],
            }],
        }


def render(card: ModelCard) -> str:
    """Markdown text of the card. The front matter is dumped as YAML, never templated, so any value
    (a path, a ref with '@') stays valid YAML."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), keep_trailing_newline=True,
                             autoescape=False, undefined=jinja2.StrictUndefined)  # no autoescape: Markdown, not HTML
    return env.get_template("model_card.md.j2").render(
        card=card, front_matter=yamlio.dumps(card.front_matter()), config_yaml=yamlio.dumps(card.config))


def write(card: ModelCard, directory: Path) -> Path:
    """Write ``README.md`` into ``directory``."""
    path = directory / "README.md"
    yamlio.write_atomic(path, render(card))
    return path


def read_front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a card (what the hub and tests read back)."""
    text = path.read_text(encoding="utf-8")
    _, head, _ = text.split("---\n", 2)
    return yamlio.loads(head, str(path))
