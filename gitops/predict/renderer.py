"""The text a variant of a classification model is given for one row.

A prompt version renders its template: ``{task}`` (the instruction), ``{context}`` (the retrieved
train rows, each written by the ``example`` template, or by default as the task's input followed by
its label) and ``{sample}`` (the row, by the model's task input template). Any other version
(a fine-tuned model, a plain base) gets ``{sample}`` alone: the same rows and the same input text,
so zero-shot, few-shot and LoRA variants differ only in what the variant adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitops.core.task import ClassificationTask


@dataclass
class PromptRenderer:
    """Renders prompts for one variant; ``config`` is a prompt version's stored config (or None)."""

    task: ClassificationTask
    config: dict[str, Any] | None = None

    def example(self, row: dict[str, Any]) -> str:
        template = (self.config or {}).get("example")
        if template:
            return template.format_map({k: "" if v is None else v for k, v in row.items()})
        return f"{self.task.render(row)} {row[self.task.label]}\n\n"

    def render(self, row: dict[str, Any], examples: list[dict[str, Any]]) -> str:
        sample = self.task.render(row)
        if self.config is None:
            return sample
        context = "".join(self.example(e) for e in examples)
        return self.config["template"].format(task=self.config.get("task", ""), context=context, sample=sample)
