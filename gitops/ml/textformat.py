"""How a data set row becomes what a model learns from and is evaluated on: the ``prompt`` section.

Training (``gitops train``) and evaluation (``gitops eval``, from the candidate's recorded config)
both format rows here, so a model is scored on text shaped exactly like the text it learned:

- ``template`` only (the default ``{text}``): plain language modelling on the formatted row;
  evaluation cuts its prompts from the first words of each row;
- ``template`` + ``response``: the row is a prompt and its answer. Plain: the text is the two
  concatenated; evaluation generates from the prompt and shows the response as the reference;
- ``chat: true`` (needs ``response``): the prompt is the user's turn and the response the
  assistant's, both through the tokenizer's chat template (:func:`gitops.ml.tokens.chat_text`);
  evaluation generates from the conversation up to the assistant's turn.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from gitops.errors import ConfigError, shown

Pair = tuple[str, "str | None"]
"""A formatted row: (prompt, response); response None for plain language modelling."""


@dataclass(frozen=True)
class PromptFormat:
    """The ``prompt`` section of a train config."""

    template: str = "{text}"
    response: str | None = None
    chat: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> PromptFormat:
        """The format a version was trained with (its recorded config); the default without one."""
        section = (config or {}).get("prompt") or {}
        if not isinstance(section, dict):
            return cls()
        return cls(template=section.get("template") or "{text}", response=section.get("response"),
                   chat=bool(section.get("chat", False)))

    def fields(self) -> list[str]:
        """Column names the templates use (``text`` is the data set's text field)."""
        names = template_fields(self.template, "prompt.template")
        if self.response is not None:
            names += template_fields(self.response, "prompt.response")
        return names

    def check(self, columns: list[str], dataset: str) -> None:
        """ConfigError when a template names a column the data set lacks, or chat has no response."""
        if self.chat and self.response is None:
            raise ConfigError("prompt.chat is true but prompt.response is not set: a chat row needs the "
                              "assistant's turn, e.g. response: '{text}'")
        known = {"text", *columns}
        for key, template in (("template", self.template), ("response", self.response)):
            if template is None:
                continue
            if unknown := sorted(set(template_fields(template, f"prompt.{key}")) - known):
                raise ConfigError(f"prompt.{key} uses {', '.join(unknown)}, which data set '{dataset}' does "
                                  f"not have (columns: {', '.join(columns)}; 'text' is the text field)")

    def pair(self, row: dict[str, Any], text_field: str) -> Pair:
        """One row formatted: (prompt, response)."""
        values = {**row, "text": row[text_field]}
        response = self.response.format_map(values) if self.response is not None else None
        return self.template.format_map(values), response


def render(tokenizer: Any, pair: Pair, chat: bool) -> str:
    """The whole text of a formatted row: what training learns and evaluation scores."""
    prompt, response = pair
    if chat:
        from gitops.ml.tokens import chat_text

        return chat_text(tokenizer, prompt, response)
    return prompt + (response or "")


def render_prompt(tokenizer: Any, prompt: str, chat: bool) -> str:
    """The text generation starts from (for chat: up to the assistant's turn)."""
    if chat:
        from gitops.ml.tokens import chat_text

        return chat_text(tokenizer, prompt)
    return prompt


def template_fields(template: str, key: str = "prompt.template") -> list[str]:
    """Column names a ``str.format`` template uses; a malformed template is a ConfigError.

    Only plain ``{column}`` fields: a conversion (``{text!z}``) or format spec (``{text:d}``) fails on
    the first row, after the data was read, and a width (``{text:>200000000}``) builds a string of
    that size for every row."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{key} '{shown(template)}' is not a valid format string ({exc})") from None
    if any(not n or not n.isidentifier() for n, _, _ in fields):
        raise ConfigError(f"{key} '{shown(template)}' must name columns, like '{{text}}'")
    if odd := [n for n, spec, conv in fields if spec or conv]:
        raise ConfigError(f"{key} '{shown(template)}': write the plain column '{{{odd[0]}}}' (no "
                          "conversion or format spec such as '!r' or ':>10')")
    return [n for n, _, _ in fields]
