"""The OpenAI completions contract: request validation, response and stream chunk shapes, errors.

This is the API that vLLM, KServe's runtimes, Triton's OpenAI frontend and Ludwig's ``serve_llm``
speak, so a client written against this server moves to them unchanged. Every field is checked
and bounded before any model work; an error names the field (``param``) in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``. Unknown fields are refused, as OpenAI does.
"""

from __future__ import annotations

import json
import math
import resource
import time
import uuid
from dataclasses import dataclass
from typing import Any

from gitops import jsonio
from gitops.ml.backends import Sampling

MAX_SEED = 2**63 - 1
MAX_STOP = 4  # OpenAI's limit
MAX_STOP_CHARS = 256
# Below these a float32 engine divides by zero or keeps no token (ct2 answered pad tokens, torch NaN):
# temperature 0 is greedy, and a nucleus smaller than one millionth is the top token anyway.
MIN_TEMPERATURE = 1e-4
MIN_TOP_P = 1e-6
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
DEFAULT_TEMPERATURE = 1.0  # idem; send temperature=0 for greedy
FD_RESERVE = 128  # descriptors kept for all that is not a client: model files, threads, git, logs
# Fields OpenAI defines that this server accepts only at their default value (None: absent/null).
DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
                "echo": (False,), "logprobs": (None, 0), "best_of": (None, 1), "suffix": (None,),
                "presence_penalty": (None, 0), "frequency_penalty": (None, 0), "logit_bias": (None, {})}
KNOWN = {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "stream",
         "stream_options", "user", *DEFAULT_ONLY}


class APIError(Exception):
    """An error answered in OpenAI's shape with an HTTP ``status`` (and extra ``headers``)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad(param: str | None, message: str, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, checked before any model work."""

    max_body_bytes: int = 1 << 20
    max_prompts: int = 32
    max_prompt_chars: int = 32_768


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on every connection, enforced below the app by :mod:`gitops.serve.connections`."""

    max_connections: int = 1000
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    send_timeout_s: float = 60.0
    max_head_bytes: int = 16 * 1024

    def effective_max(self) -> int:
        """``max_connections``, lowered to fit the soft file-descriptor limit of this process."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - FD_RESERVE))


@dataclass(frozen=True)
class CompletionRequest:
    """A validated ``POST /v1/completions`` body."""

    model: str
    prompts: tuple[str, ...]
    max_tokens: int
    sampling: Sampling
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    given: frozenset[str] = frozenset()  # the fields the body set (a prompt version's defaults fill the rest)
    chat: bool = False  # /v1/chat/completions: ``prompts`` holds the last user message (gitops.serve.chat)
    messages: tuple[tuple[str, str], ...] = ()  # a chat request's (role, content) turns


def parse_completion(body: bytes, limits: Limits) -> CompletionRequest:
    """Validate a request body; raises :class:`APIError` naming the first bad field."""
    data = load_object(body, limits, KNOWN, DEFAULT_ONLY)
    return CompletionRequest(model=model_field(data), prompts=_prompts(data, limits), max_tokens=max_tokens_field(data),
                             **common_fields(data))


def load_object(body: bytes, limits: Limits, known: set[str], default_only: dict[str, tuple]) -> dict[str, Any]:
    """The body as a JSON object whose keys are all ``known`` and whose ``default_only`` fields
    hold one of their allowed values; raises :class:`APIError` naming the first bad field."""
    if len(body) > limits.max_body_bytes:
        raise APIError(413, f"The request body is {len(body)} bytes; the limit is {limits.max_body_bytes}.",
                       code="request_too_large")
    try:
        data = jsonio.loads(body.decode("utf-8"), "the request body")
    except UnicodeDecodeError as exc:
        raise bad(None, f"We could not parse the JSON body of your request: it is not UTF-8 (byte {exc.start}).") \
            from None
    except jsonio.JsonError as exc:  # not JSON, NaN/Infinity, a duplicate key, a lone surrogate, too deep...
        raise bad(None, f"We could not parse the JSON body of your request: {exc.reason}.") from None
    if not isinstance(data, dict):
        raise bad(None, "The request body must be a JSON object.")
    for key in data:
        if key not in known:
            raise bad(str(key)[:64], f"Unrecognized request argument supplied: {str(key)[:64]}")
    for key, allowed in default_only.items():
        if key in data and not any(data[key] == a and isinstance(data[key], bool) == isinstance(a, bool)
                                   for a in allowed):
            raise bad(key, f"'{key}' is not supported by this server; leave it out.", "unsupported")
    _check_n_and_user(data)
    return data


def common_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The fields completions and chat completions share: sampling, stop, streaming."""
    stream = _flag(data, "stream")
    return {"sampling": Sampling(temperature=_temperature(data), top_p=_top_p(data), seed=_seed(data)),
            "stop": _stop(data), "stream": stream, "include_usage": _include_usage(data, stream),
            "given": frozenset(k for k, v in data.items() if v is not None)}


def model_field(data: dict) -> str:
    """The ``model`` field, checked."""
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("model", "You must provide a model parameter (a non-empty string).")
    if len(model) > 256:
        raise bad("model", "'model' is longer than 256 characters.")
    return model


def _prompts(data: dict, limits: Limits) -> tuple[str, ...]:
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, (int, list)) for p in prompt):
        raise bad("prompt", "Token-id prompts are not supported; send the prompt as text.", "unsupported")
    else:
        raise bad("prompt", "'prompt' must be a string or a non-empty list of strings.")
    if len(prompts) > limits.max_prompts:
        raise bad("prompt", f"'prompt' has {len(prompts)} entries; the limit is {limits.max_prompts}.")
    longest = max(len(p) for p in prompts)
    if longest > limits.max_prompt_chars:
        raise APIError(413, f"A prompt has {longest} characters; the limit is {limits.max_prompt_chars}.",
                       param="prompt", code="prompt_too_long")
    return tuple(prompts)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def max_tokens_field(data: dict, key: str = "max_tokens") -> int:
    """``max_tokens`` (or ``key``), at least 1; the model's context bounds it later."""
    value = data.get(key)
    if value is None:
        return DEFAULT_MAX_TOKENS
    if not _is_int(value) or value < 1:
        raise bad(key, f"'{key}' must be an integer of at least 1.")
    return value  # the upper bound depends on the model's context; checked once it is known


def _number(data: dict, key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise bad(key, f"'{key}' must be a number from {low:g} to {high:g}.")
    return float(value)


def _temperature(data: dict) -> float:
    value = _number(data, "temperature", DEFAULT_TEMPERATURE, 0.0, 2.0)
    if 0.0 < value < MIN_TEMPERATURE:
        raise bad("temperature", f"'temperature' must be 0 (greedy) or from {MIN_TEMPERATURE:g} to 2.")
    return value


def _top_p(data: dict) -> float:
    value = _number(data, "top_p", 1.0, 0.0, 1.0)
    if value < MIN_TOP_P:
        raise bad("top_p", f"'top_p' must be from {MIN_TOP_P:g} to 1 (send temperature 0 for the top token).")
    return value


def _seed(data: dict) -> int | None:
    value = data.get("seed")
    if value is None:
        return None
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise bad("seed", f"'seed' must be an integer from 0 to {MAX_SEED}.")
    return value


def _stop(data: dict) -> tuple[str, ...]:
    value = data.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) \
            or len(stops) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise bad("stop", f"'stop' must be a non-empty string or a list of at most {MAX_STOP} of them, "
                          f"each at most {MAX_STOP_CHARS} characters.")
    return tuple(stops)


def _flag(data: dict, key: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(key, f"'{key}' must be true or false.")
    return value


def _check_n_and_user(data: dict) -> None:
    if "n" in data and data["n"] is not None and not (_is_int(data["n"]) and data["n"] == 1):
        raise bad("n", "Only n=1 is supported: send one request per completion.", "unsupported")
    if "user" in data and data["user"] is not None and not (isinstance(data["user"], str)
                                                             and len(data["user"]) <= 256):
        raise bad("user", "'user' must be a string of at most 256 characters.")


def _include_usage(data: dict, stream: bool) -> bool:
    options = data.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise bad("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise bad("stream_options", "'stream_options' may only hold 'include_usage'.")
    return _flag(options, "include_usage")


# -- responses --


def completion_id() -> str:
    return "cmpl-" + uuid.uuid4().hex


def choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def completion(cid: str, created: int, version: str, md5: str, choices: list[dict],
               usage: dict[str, int] | None, *, kind: str = "text_completion") -> dict[str, Any]:
    """A response body, or a stream chunk when ``usage`` is None (OpenAI uses one shape for both;
    ``kind`` is ``chat.completion`` or ``chat.completion.chunk`` for chat).
    ``system_fingerprint`` carries the md5 of the weights that answered."""
    body = {"id": cid, "object": kind, "created": created, "model": version,
            "system_fingerprint": md5, "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return body


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def model_list(names: list[str], created: float) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": int(created),
                                        "owned_by": "gitops"} for name in names]}


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def now() -> int:
    return int(time.time())
