"""A head version behind ``/v1/completions``: each request's text is a row, answered by its head.

A head version (a classification head on a frozen, pinned base; :mod:`gitops.predict.head_variant`) does
not generate. The server renders the row as ``gitops predict`` does (the model's task input template,
through the same :class:`~gitops.predict.prompter.Prompter`), runs the base once for every prompt of
the request together, and answers each with the likeliest label as the choice's ``text`` and
``"classification": {"label": ..., "matched": true, "probabilities": {label: p, ...}}`` (every
label, task order, summing to 1) — what predict writes for the same row. ``usage`` counts the
row's tokens as the prompt and none as the completion. Sampling settings and ``max_tokens`` do not
apply (there is nothing to sample); a stream carries the answer in one chunk per choice.

The base's forward passes run one request at a time per loaded model (off the event loop): a head
answers in one forward pass, so requests queue for milliseconds, not for a batch to fill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gitops.serve import chat, prompted, protocol
from gitops.serve.logs import VERSION_HEADER
from gitops.serve.protocol import CompletionRequest
from gitops.serve.web import serve_state

if TYPE_CHECKING:
    from gitops.serve.engine import LoadedModel


@dataclass
class Answer:
    label: str
    probabilities: dict[str, float]
    prompt_tokens: int


def classify(model: LoadedModel, texts: tuple[str, ...]) -> list[Answer]:
    """Each text as a row of the task, rendered and answered by the head (worker thread). Raises
    APIError (400) for a text that is not a row of this task."""
    from gitops.predict.head_variant import predictions

    parts, classifier = model.resolved.head, model.classifier
    assert parts is not None and classifier is not None
    rows = [prompted.row_of(parts.prompter.task, text) for text in texts]
    ids = [classifier.encode(p) for p in parts.prompter.render_many(rows)]
    with model.render_lock:  # one forward pass at a time on this model's base
        answered = predictions(classifier, ids)
    return [Answer(label, probs, len(x)) for (label, probs), x in zip(answered, ids, strict=True)]


async def answer(request: Request, req: CompletionRequest, model: LoadedModel) -> Response:
    """The whole answer to a request for a head version. The caller pinned ``model`` once per prompt:
    the pins are released here once the head has answered (on an error the caller releases them)."""
    answers = await run_in_threadpool(classify, model, req.prompts)
    model.unpin(len(req.prompts))
    state = serve_state(request)
    prompt = sum(a.prompt_tokens for a in answers)
    request.state.prompt_tokens, request.state.completion_tokens = prompt, 0
    state.metrics.prompt_tokens.labels(model.label).inc(prompt)
    usage = protocol.usage(prompt, 0)
    cid = ("chat" if req.chat else "") + protocol.completion_id()
    headers = {VERSION_HEADER: f"{model.label}; md5={model.md5}", "X-Request-Id": request.state.request_id}
    if req.stream:
        return StreamingResponse(_stream(req, model, cid, answers, usage), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    choices = [_choice(req, i, a) for i, a in enumerate(answers)]
    kind = "chat.completion" if req.chat else "text_completion"
    return JSONResponse(protocol.completion(cid, protocol.now(), model.label, model.md5, choices, usage, kind=kind),
                        headers=headers)


def _choice(req: CompletionRequest, index: int, a: Answer, *, first: bool = False) -> dict[str, Any]:
    out = chat.choice(index, a.label, "stop", stream=req.stream, first=first) if req.chat \
        else protocol.choice(index, a.label, "stop")
    out["classification"] = {"label": a.label, "matched": True, "probabilities": a.probabilities}
    return out


async def _stream(req: CompletionRequest, model: LoadedModel, cid: str, answers: list[Answer],
                  usage: dict[str, int]) -> AsyncIterator[bytes]:
    kind = "chat.completion.chunk" if req.chat else "text_completion"
    created = protocol.now()
    for i, a in enumerate(answers):
        yield protocol.sse(protocol.completion(cid, created, model.label, model.md5,
                                               [_choice(req, i, a, first=True)], None, kind=kind))
    if req.include_usage:
        body = protocol.completion(cid, created, model.label, model.md5, [], None, kind=kind)
        body["usage"] = usage
        yield protocol.sse(body)
    yield protocol.sse("[DONE]")
