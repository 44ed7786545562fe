"""``POST /v1/chat/completions``: the chat contract over the same batcher as ``/v1/completions``.

A chat request becomes a one-prompt :class:`~gitops.serve.protocol.CompletionRequest` and runs
exactly as a completion does (pinned model, batching, deadlines, stop strings, streaming); only the
prompt and the answer's shape differ:

- a prompt version takes the content of the **last user message** as its sample (the rest of the
  conversation is not part of a classification row) and renders it as ``/v1/completions`` does;
- a weights version runs the whole conversation through its tokenizer's chat template (400 when
  the tokenizer has none: send the text to ``/v1/completions`` instead);
- the answer is ``chat.completion`` (``choices[i].message``) or, streaming, ``chat.completion.chunk``
  events (a first delta with the role, then the text, then the ``finish_reason``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gitops.serve.engine import LoadedModel
from gitops.serve.protocol import (
    APIError,
    CompletionRequest,
    Limits,
    bad,
    common_fields,
    load_object,
    max_tokens_field,
    model_field,
)

DEFAULT_ONLY = {"logprobs": (None, False), "top_logprobs": (None, 0), "presence_penalty": (None, 0),
                "frequency_penalty": (None, 0), "logit_bias": (None, {}), "tools": (None, []),
                "tool_choice": (None, "none"), "response_format": (None, {"type": "text"})}
KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed",
         "n", "stream", "stream_options", "user", *DEFAULT_ONLY}
ROLES = ("system", "developer", "user", "assistant")
MAX_MESSAGES = 64


def parse_chat(body: bytes, limits: Limits) -> CompletionRequest:
    """Validate a chat request body; ``prompts`` holds the last user message. Raises APIError."""
    data = load_object(body, limits, KNOWN, DEFAULT_ONLY)
    messages = _messages(data, limits)
    users = [content for role, content in messages if role == "user"]
    if not users:
        raise bad("messages", "'messages' must hold at least one message with role 'user'.")
    tokens_key = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    fields = common_fields(data)
    if data.get(tokens_key) is not None:
        fields["given"] = fields["given"] | {"max_tokens"}
    return CompletionRequest(model=model_field(data), prompts=(users[-1],),
                             max_tokens=max_tokens_field(data, tokens_key), chat=True, messages=messages, **fields)


def _messages(data: dict[str, Any], limits: Limits) -> tuple[tuple[str, str], ...]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "'messages' must be a non-empty list of {role, content} objects.")
    if len(messages) > MAX_MESSAGES:
        raise bad("messages", f"'messages' has {len(messages)} entries; the limit is {MAX_MESSAGES}.")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad(f"messages[{i}]", f"messages[{i}] must be an object with a 'role' of {', '.join(ROLES)}.")
        out.append((message["role"], _content(message.get("content"), i, limits)))
    return tuple(out)


def _content(content: Any, i: int, limits: Limits) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts joined."""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise bad(f"messages[{i}].content", f"messages[{i}].content must be a string (or a list of text parts).")
    if len(content) > limits.max_prompt_chars:
        raise APIError(413, f"messages[{i}] has {len(content)} characters; the limit is {limits.max_prompt_chars}.",
                       param=f"messages[{i}].content", code="prompt_too_long")
    return content


def with_prompt(model: LoadedModel, req: CompletionRequest) -> CompletionRequest:
    """A weights version's prompt: the conversation through the tokenizer's chat template (a
    prompt version keeps the last user message, its sample)."""
    if model.prompt is not None:
        return req
    tokenizer = model.backend.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise bad("messages", f"{model.label} has no chat template; send the text to /v1/completions instead.",
                  "no_chat_template")
    turns = [{"role": role, "content": content} for role, content in req.messages]
    text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return replace(req, prompts=(text,))


def choice(index: int, text: str, finish_reason: str | None, *, stream: bool, first: bool = False) -> dict[str, Any]:
    """One chat choice: ``message`` in an answer, ``delta`` in a stream chunk."""
    if not stream:
        return {"index": index, "message": {"role": "assistant", "content": text}, "logprobs": None,
                "finish_reason": finish_reason}
    delta: dict[str, str] = {"role": "assistant", "content": ""} if first else {}
    if text:
        delta["content"] = text
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
