"""``/v1/chat/completions`` and ``/v1/models``: the agent behind OpenAI's chat API.

An OpenAI client (the official SDKs, Open WebUI, LibreChat, litellm …) talks to chat-shell by
changing only its base URL; the agent runs its tools on the server and the answer is its text.
The request's messages are the conversation (stateless, nothing stored) unless a session id
(``X-Session-Id`` or ``metadata.session_id``) stores the turn in a chat-shell session. A run is
started as ``POST /v1/response`` starts one; a client that hangs up cancels it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Annotated, Any

from chat_shell import AgentRun, ChatInput, EventType
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from ._deps import CurrentPrincipal, State, get_principal
from ._errors import ApiError
from ._openai_errors import openai_error, run_failure
from ._openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
    FinishReason,
    ModelInfo,
    ModelList,
    OpenAIErrorBody,
    RunExtension,
)
from ._runs import RunRecord, RunRegistry
from ._sse import sse_response
from ._state import ServerState

__all__ = ["router"]

router = APIRouter(tags=["openai"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorBody}
    for status in (400, 401, 404, 409, 413, 422, 429, 500, 502, 503, 504)
}
_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": "`data: <ChatCompletionChunk JSON>` frames, then `data: [DONE]`",
        }
    }
}
_PATTERN = re.compile(r"[*?\[]")  # an fnmatch pattern of allowed_models, not a model's name
_BATCH = 256
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=_ERRORS,
    dependencies=[Depends(get_principal)],
    summary="The models clients may ask for",
)
async def list_models(state: State) -> ModelList:
    """The server's allowed models, its default first (`allowed_models` entries that are
    patterns, such as `openai/*`, are accepted in requests but not listed)."""
    names = [name for name in state.allowed_models if not _PATTERN.search(name)]
    return ModelList(data=[ModelInfo(id=name) for name in names])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": _SSE}, **_ERRORS},
    summary="Answer a conversation with the agent (OpenAI's chat completions)",
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    x_session_id: Annotated[
        str | None,
        Header(max_length=128, description="store the turn in this session (else: stateless)"),
    ] = None,
) -> Response:
    """The agent's answer to the last (user) message, the earlier ones being the conversation;
    its tools run on the server. With a session id the session's history is the conversation
    instead (the request's system messages still apply) and the turn is stored in it.
    `stream: true` answers SSE chunks; a client that disconnects cancels the run."""
    session_id = _session_id(x_session_id, body.session_id)
    try:
        state.check_model(body.model)
    except ApiError as exc:
        raise ApiError(404, "model_not_found", exc.message) from None
    record = await state.start_turn(_turn(body, session_id), principal)
    run = record.live
    headers = {"X-Subtask-Id": run.id}
    if session_id is not None:
        headers["X-Session-Id"] = session_id
    if body.stream:
        # Wait for the first event: a run that fails before saying anything answers an error
        # status, which clients handle better than an error inside a stream.
        if not run.events and not await _while_connected(request, run, _first_event(run)):
            return Response(status_code=499)
        if run.events[0].event_type is EventType.ERROR:
            await run.wait()
            raise run_failure(run.error or {}, headers)
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = _Chunks(run.id, int(run.created_at), run.model or body.model, include_usage)
        return _stream(state, record, chunks, headers)
    if not await _while_connected(request, run, run.wait()):
        return Response(status_code=499)
    if run.state == "failed" or (run.error and not run.content):
        raise run_failure(run.error or {}, headers)
    completion = _completion(record, body.model, session_id)
    return JSONResponse(completion.model_dump(mode="json"), headers=headers)


def _session_id(header: str | None, in_metadata: str | None) -> str | None:
    if header is not None and in_metadata is not None and header != in_metadata:
        raise ApiError(
            400,
            "bad_request",
            "X-Session-Id and metadata.session_id name different sessions: send one of them",
        )
    return header if header is not None else in_metadata


def _turn(body: ChatCompletionRequest, session_id: str | None) -> ChatInput:
    """The request as a chat-shell turn: stateless, the earlier messages are this turn's
    context (nothing is stored); with a session, its history stands for them but for the
    system messages, and the turn is stored."""
    *earlier, last = body.messages
    if session_id is not None:
        earlier = [m for m in earlier if m.role in ("system", "developer")]
    return ChatInput(
        message=last.text or "",
        session_id=session_id,
        context=[m.to_message() for m in earlier],
        model=body.model,
        temperature=body.temperature,
        max_tokens=body.output_tokens,
        tools=[] if body.tool_choice == "none" else None,
        store=session_id is not None,
    )


async def _first_event(run: AgentRun) -> None:
    async for _ in run.follow():  # left at a yield: nothing to clean up
        return


async def _hung_up(request: Request) -> None:
    # The body has been read: what comes next is the client's disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _while_connected(
    request: Request, run: AgentRun, waiting: Coroutine[Any, Any, Any]
) -> bool:
    """Wait for ``waiting``; ``False`` (and the run cancelled) if the client hangs up first."""
    task = asyncio.ensure_future(waiting)
    hang_up = asyncio.ensure_future(_hung_up(request))
    try:
        await asyncio.wait((task, hang_up), return_when=asyncio.FIRST_COMPLETED)
    finally:
        hang_up.cancel()
        if not task.done():
            task.cancel()
            run.cancel()
    return task.done() and not task.cancelled()


def _finish_reason(complete: dict[str, Any]) -> FinishReason:
    """``stop`` for an answer that ended by itself; ``length`` for one cut short (the model's
    token limit, the run's limits, a cancel)."""
    if complete.get("status") == "completed":
        return "stop"
    if complete.get("finish_reason") == "content_filter":
        return "content_filter"
    return "length"


def _completion(record: RunRecord, model: str, session_id: str | None) -> ChatCompletion:
    run = record.live
    complete = run.events[-1].data
    thinking = "".join(e.delta for e in run.events if e.event_type is EventType.THINKING)
    return ChatCompletion(
        id=run.id,
        created=int(run.created_at),
        model=run.model or model,
        choices=[
            Choice(
                message=AssistantMessage(content=run.content, reasoning_content=thinking or None),
                finish_reason=_finish_reason(complete),
            )
        ],
        usage=CompletionUsage.of(run.usage),
        chat_shell=RunExtension(
            run_id=run.id,
            session_id=session_id,
            status=run.state,
            reason=complete.get("reason"),
            tool_calls=list(run.tool_calls),
        ),
    )


class _Chunks:
    """The ``data:`` frames of one streamed completion (see ``ChatCompletionChunk``), written
    directly: there is one per token."""

    def __init__(self, run_id: str, created: int, model: str, include_usage: bool) -> None:
        head = {"id": run_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self._head = "data: " + _dumps(head)[:-1]  # the closing brace comes after the choices
        self._usage = ',"usage":null' if include_usage else ""
        self.wants_usage = include_usage

    def chunk(
        self,
        delta: dict[str, Any],
        finish_reason: FinishReason | None = None,
        extension: dict[str, Any] | None = None,
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        text = f'{self._head},"choices":[{_dumps(choice)}]{self._usage}'
        if extension is not None:
            text += ',"chat_shell":' + _dumps(extension)
        return f"{text}}}\n\n".encode()

    def usage(self, usage: CompletionUsage) -> bytes:
        return f'{self._head},"choices":[],"usage":{usage.model_dump_json()}}}\n\n'.encode()


_DONE = b"data: [DONE]\n\n"
_TOOL_EVENTS = (EventType.TOOL_CALL, EventType.TOOL_RESULT)


def _last_frames(chunks: _Chunks, complete: dict[str, Any], error: dict[str, Any] | None) -> bytes:
    if complete.get("status") == "failed":
        # OpenAI's in-stream error: the SDKs raise it; no [DONE] follows.
        failure = run_failure(error or {})
        body = openai_error(
            failure.status, failure.code, failure.message, retryable=failure.retryable
        )
        return b"data: " + _dumps(body).encode() + b"\n\n"
    frames = chunks.chunk({}, _finish_reason(complete))
    if chunks.wants_usage:
        frames += chunks.usage(CompletionUsage.of(complete.get("usage") or {}))
    return frames + _DONE


async def _frames(
    record: RunRecord, registry: RunRegistry, chunks: _Chunks
) -> AsyncIterator[bytes]:
    run = record.live
    events = run.events
    registry.streams += 1
    registry.watchers[record.run_id] += 1
    finished = False
    error: dict[str, Any] | None = None
    try:
        batch = [chunks.chunk({"role": "assistant", "content": ""})]
        async for event in run.follow():
            kind = event.event_type
            if kind is EventType.CONTENT:
                batch.append(chunks.chunk({"content": event.delta}))
            elif kind is EventType.THINKING:
                batch.append(chunks.chunk({"reasoning_content": event.delta}))
            elif kind in _TOOL_EVENTS:
                extension = {"event_type": kind.value, "data": event.data, "seq": event.seq}
                batch.append(chunks.chunk({}, extension=extension))
            elif kind is EventType.ERROR:
                error = event.data
            elif kind is EventType.COMPLETE:
                batch.append(_last_frames(chunks, event.data, error))
            if event.seq >= len(events) - 1 or len(batch) >= _BATCH:
                yield b"".join(batch)
                batch = []
        finished = True
    finally:
        registry.streams -= 1
        registry.watchers[record.run_id] -= 1
        if not finished and not run.done:
            run.cancel()  # the client is gone (or stopped reading): nobody wants the answer


def _stream(
    state: ServerState, record: RunRecord, chunks: _Chunks, headers: dict[str, str]
) -> Response:
    response = sse_response(
        _frames(record, state.runs, chunks),
        headers=headers,
        keepalive_seconds=state.server.keepalive_seconds,
        send_timeout=state.server.send_timeout_seconds,
    )
    # Once the answer is over, a run still going has no one to answer: also when the client
    # left before the stream's first frame (the frames' own clean-up never ran then).
    response.background = BackgroundTask(record.live.cancel)
    return response
