"""``POST /v1/completions`` and ``/v1/chat/completions``: validate, pin the current model, queue
one job per prompt, answer.

The model is pinned at admission, so the version named in the ``X-Gitops-Version`` header (sent
before the first streamed byte) is the version that generates every token of the answer, even if
a swap happens meanwhile. Tokens are counted with that model's own tokenizer, and a prompt that
does not fit its context is refused (413), never cut silently. A chat request is a one-prompt
request answered in the chat shape (:mod:`gitops.serve.chat`); for a prompt version each prompt
is a row, rendered as ``gitops predict`` renders it (:mod:`gitops.serve.prompted`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gitops.serve import chat, headed, prompted, protocol
from gitops.serve.engine import LoadedModel
from gitops.serve.logs import VERSION_HEADER
from gitops.serve.protocol import APIError, CompletionRequest
from gitops.serve.scheduler import Closed, Job, QueueFull
from gitops.serve.web import error_response, read_body, serve_state


async def handle(request: Request) -> Response:
    """``POST /v1/completions``."""
    return await _serve(request, protocol.parse_completion)


async def handle_chat(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    return await _serve(request, chat.parse_chat)


async def _serve(request: Request, parse: Callable[[bytes, protocol.Limits], CompletionRequest]) -> Response:
    state = serve_state(request)
    request.state.request_id = uuid.uuid4().hex[:16]
    try:
        body = await read_body(request, state.config.limits.max_body_bytes)
        req = parse(body, state.config.limits)
        model = state.acquire(len(req.prompts))
    except APIError as exc:
        return error_response(request, exc)
    try:
        _check_model(request, req, model)
        if model.classifier is not None:  # a head version: one forward pass, a label and its probabilities
            return await headed.answer(request, req, model)  # it releases the pins once answered
        if req.chat:
            req = chat.with_prompt(model, req)
        examples = None
        if model.prompt is not None:  # a prompt version: each text is a row, rendered as predict renders it
            req, examples = await run_in_threadpool(prompted.render_rows, model, req)
        constrained = model.prompt is not None and model.prompt.constrained
        if constrained:  # the labels scored as predict scores them; nothing queued, nothing generated
            ids, answers = await _score(req, model, examples)
        else:
            jobs = _admit(request, req, model)
    except BaseException as exc:  # not queued: nothing else will release the pins
        model.unpin(len(req.prompts))
        if isinstance(exc, APIError):
            return error_response(request, exc)
        raise
    if constrained:
        model.unpin(len(req.prompts))
        return _constrained(request, req, model, ids, answers)
    headers = {VERSION_HEADER: f"{model.label}; md5={model.md5}", "X-Request-Id": request.state.request_id}
    if req.stream:
        return StreamingResponse(_stream(request, req, model, jobs), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    try:
        await _collect(jobs)
    except APIError as exc:
        return error_response(request, exc)
    choices = [_choice(req, model, j.index, j.output, j.finish_reason, await _label(model, j.output)) for j in jobs]
    usage = _account(request, model, jobs)
    kind = "chat.completion" if req.chat else "text_completion"
    return JSONResponse(protocol.completion(_cid(req), protocol.now(), model.label, model.md5, choices, usage,
                                            kind=kind), headers=headers)


async def _score(req: CompletionRequest, model: LoadedModel, examples: list | None) -> tuple[list[list[int]], list]:
    """A constrained prompt version's answers (:func:`prompted.score`; ``examples``: each prompt's,
    for calibration) and the prompts' ids."""
    assert model.prompt is not None  # scored only for a prompt version
    ids = [model.backend.encode(p, chat=model.prompt.chat) for p in req.prompts]
    longest = max(len(i) for i in ids)
    if longest >= model.context:
        raise APIError(413, f"This model's maximum context length is {model.context} tokens; the prompt "
                            f"has {longest} tokens.", param="prompt", code="context_length_exceeded")
    return ids, await run_in_threadpool(prompted.score, model, list(req.prompts), examples)


def _constrained(request: Request, req: CompletionRequest, model: LoadedModel, ids: list[list[int]],
                 answers: list) -> Response:
    """A prompt version with ``generation: {constrain: labels}`` answers with the likeliest label as
    its text (as predict's ``raw_output``), its probabilities in the ``classification`` field."""
    state = serve_state(request)
    prompt_tokens, completion_tokens = sum(len(i) for i in ids), sum(n for _, _, n in answers)
    request.state.prompt_tokens, request.state.completion_tokens = prompt_tokens, completion_tokens
    state.metrics.prompt_tokens.labels(model.label).inc(prompt_tokens)
    state.metrics.completion_tokens.labels(model.label).inc(completion_tokens)
    usage = protocol.usage(prompt_tokens, completion_tokens)
    headers = {VERSION_HEADER: f"{model.label}; md5={model.md5}", "X-Request-Id": request.state.request_id}

    def answer(i: int, label: str, probs: dict[str, float], text: str, finish: str | None,
               first: bool = False) -> dict:
        out = chat.choice(i, text, finish, stream=req.stream, first=first) if req.chat \
            else protocol.choice(i, text, finish)
        if finish is not None:
            out["classification"] = {"label": label, "matched": True, "probabilities": probs}
        return out

    kind = ("chat.completion" if req.chat else "text_completion") + (".chunk" if req.stream and req.chat else "")
    if not req.stream:
        choices = [answer(i, label, probs, label, "stop") for i, (label, probs, _) in enumerate(answers)]
        return JSONResponse(protocol.completion(_cid(req), protocol.now(), model.label, model.md5, choices, usage,
                                                kind=kind), headers=headers)

    async def events() -> AsyncIterator[bytes]:
        cid, created = _cid(req), protocol.now()

        def chunk(choices: list[dict], with_usage: bool = False) -> bytes:
            body = protocol.completion(cid, created, model.label, model.md5, choices, None, kind=kind)
            if with_usage:
                body["usage"] = usage
            return protocol.sse(body)

        for i, (label, probs, _) in enumerate(answers):
            if req.chat:
                yield chunk([answer(i, label, probs, "", None, first=True)])
            yield chunk([answer(i, label, probs, label, None)])
            yield chunk([answer(i, label, probs, "", "stop")])
        if req.include_usage:
            yield chunk([], with_usage=True)
        yield protocol.sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"})


def _check_model(request: Request, req: CompletionRequest, model: LoadedModel) -> None:
    state = serve_state(request)
    if req.model not in (state.name, state.config.ref, model.label):
        raise APIError(404, f"The model '{req.model}' does not exist; this server serves "
                            f"'{state.name}' (now {model.label}).", param="model", code="model_not_found")


def _choice(req: CompletionRequest, model: LoadedModel, index: int, text: str, finish_reason: str | None,
            label: dict | None = None, *, first: bool = False) -> dict:
    """One choice (or a stream chunk's); a prompt version's final one carries the label its whole
    output reads as (``classification``, from :func:`_label`)."""
    out = chat.choice(index, text, finish_reason, stream=req.stream, first=first) if req.chat \
        else protocol.choice(index, text, finish_reason)
    if label is not None and finish_reason is not None:
        out["classification"] = label
    return out


async def _label(model: LoadedModel, output: str) -> dict | None:
    """A prompt version's reading of ``output`` by its task's rules, in a worker thread: the rules
    come from ``model.yaml`` and never run on the event loop (RE2 keeps them linear besides)."""
    if model.prompt is None:
        return None
    return await run_in_threadpool(prompted.classification, model, output)


def _admit(request: Request, req: CompletionRequest, model: LoadedModel) -> list[Job]:
    """Check the request against the pinned model, make its jobs and queue them (all or none)."""
    state = serve_state(request)
    if req.max_tokens >= model.context:
        raise protocol.bad("max_tokens", f"'max_tokens' is {req.max_tokens}; {model.label} has a context "
                                         f"of {model.context} tokens, prompt included.")
    chat_text = model.prompt is not None and model.prompt.chat  # the prompts carry their own special tokens
    ids = [model.backend.encode(p, chat=chat_text) for p in req.prompts]
    longest = max(len(i) for i in ids)
    if longest + req.max_tokens > model.context:
        raise APIError(413, f"This model's maximum context length is {model.context} tokens; the prompt "
                            f"has {longest} tokens and max_tokens asks for {req.max_tokens} more.",
                       param="prompt", code="context_length_exceeded")
    loop, events = asyncio.get_running_loop(), asyncio.Queue[Any]()
    deadline = time.monotonic() + state.config.request_timeout_s
    jobs = [Job(model, i, p, req.max_tokens, req.sampling, req.stop, deadline, stream=req.stream,
                loop=loop, events=events) for i, p in enumerate(ids)]
    try:
        state.batcher.submit(jobs)
    except QueueFull:
        raise APIError(429, "The server's queue is full; retry after a moment.", type="rate_limit_error",
                       code="queue_full", headers=state.retry_after()) from None
    except Closed:
        raise APIError(503, "The server is shutting down; retry shortly.", type="server_error",
                       code="unavailable", headers=state.retry_after()) from None
    request.state.jobs = jobs
    return jobs


async def _events(jobs: list[Job]) -> AsyncIterator[tuple]:
    """The jobs' events until every one is done; a deadline or engine failure raises APIError."""
    events: asyncio.Queue = jobs[0].events
    pending = {j.index for j in jobs}
    deadline = jobs[0].deadline
    try:
        while pending:
            left = deadline - time.monotonic()
            try:
                kind, index, value = await asyncio.wait_for(events.get(), max(left, 0.0) + 0.5)
            except asyncio.TimeoutError:
                raise _timeout() from None
            if kind == "error":
                raise _timeout() if isinstance(value, TimeoutError) else APIError(
                    500, f"The engine failed: {type(value).__name__}: {value}", type="server_error",
                    code="engine_error")
            if kind == "done":
                pending.discard(index)
            yield kind, index, value
    finally:
        if pending:  # timed out, failed, or the client went away: stop the other rows too
            for job in jobs:
                job.cancel()


def _timeout() -> APIError:
    return APIError(504, "The request ran past the server's timeout.", type="server_error", code="timeout")


async def _collect(jobs: list[Job]) -> None:
    async for _event in _events(jobs):
        pass


async def _stream(request: Request, req: CompletionRequest, model: LoadedModel,
                  jobs: list[Job]) -> AsyncIterator[bytes]:
    """Server-sent events: a chunk per piece of text, one with each finish_reason, optionally the
    usage, then ``[DONE]``. An error after the headers went out is sent as an ``error`` event."""
    cid, created = _cid(req), protocol.now()
    kind = "chat.completion.chunk" if req.chat else "text_completion"

    def chunk(choices: list[dict], usage: dict | None = None) -> bytes:
        body = protocol.completion(cid, created, model.label, model.md5, choices, None, kind=kind)
        if usage is not None:
            body["usage"] = usage
        return protocol.sse(body)

    try:
        if req.chat:  # OpenAI's first chat chunk names the role
            yield chunk([_choice(req, model, 0, "", None, first=True)])
        async for event, index, value in _events(jobs):
            if event == "delta":
                yield chunk([_choice(req, model, index, value, None)])
            else:
                label = await _label(model, value.output)
                yield chunk([_choice(req, model, index, "", value.finish_reason, label)])
        usage = _account(request, model, jobs)
        if req.include_usage:
            yield chunk([], usage)
    except APIError as exc:
        request.state.error_type = exc.type
        yield protocol.sse(exc.body())
    yield protocol.sse("[DONE]")


def _account(request: Request, model: LoadedModel, jobs: list[Job]) -> dict[str, int]:
    """Usage of the whole request, recorded for the access log and the token counters."""
    state = serve_state(request)
    prompt = sum(len(j.ids) for j in jobs)
    completion = sum(j.completion_tokens for j in jobs)
    request.state.prompt_tokens, request.state.completion_tokens = prompt, completion
    state.metrics.prompt_tokens.labels(model.label).inc(prompt)
    state.metrics.completion_tokens.labels(model.label).inc(completion)
    return protocol.usage(prompt, completion)


def _cid(req: CompletionRequest) -> str:
    return "chat" + protocol.completion_id() if req.chat else protocol.completion_id()
