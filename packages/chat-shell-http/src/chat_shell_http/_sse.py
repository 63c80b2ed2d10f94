"""Server-sent events: a run's events as ``event:``/``id:``/``data:`` frames.

Frames are built with ``json.dumps`` of a plain dict (one per streamed token: the hot path),
and every event already waiting is sent in one write. A stream that falls more than
``buffer_events`` behind its run is ended without a ``complete`` event; the client resumes
with ``Last-Event-ID``. The run never waits for a stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from chat_shell import AgentRun, ChatEvent
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from ._errors import public_error
from ._runs import RunRecord, RunRegistry

__all__ = ["SSE_HEADERS", "encode_event", "event_payload", "sse_response", "stream_response"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_BATCH = 256
logger = logging.getLogger("chat_shell_http")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def event_payload(event: ChatEvent, session_id: str | None = None) -> dict[str, Any]:
    """The event as the JSON clients receive (a model error's provider text is replaced;
    ``session_id``: the session's id as the client knows it, default the event's)."""
    data = event.data
    event_type = event.event_type
    if event_type == "error":
        data = public_error(data) or data
    return {
        "event_type": event_type,
        "data": data,
        "run_id": event.run_id,
        "session_id": event.session_id if session_id is None else session_id,
        "seq": event.seq,
        "timestamp": event.timestamp,
    }


def encode_event(event: ChatEvent, session_id: str | None = None) -> bytes:
    """One SSE frame: ``event: <type>``, ``id: <seq>``, ``data: <ChatEvent JSON>``."""
    return (
        f"event: {event.event_type.value}\nid: {event.seq}\ndata: "
        f"{_dumps(event_payload(event, session_id))}\n\n".encode()
    )


async def _frames(
    record: RunRecord, after: int, registry: RunRegistry, buffer_events: int
) -> AsyncIterator[bytes]:
    run: AgentRun = record.run
    events = run.events
    registry.streams += 1
    record.watchers += 1
    finished = False
    session_id = record.session_id
    try:
        batch: list[bytes] = []
        async for event in run.follow(after):
            batch.append(encode_event(event, session_id))
            seq = event.seq
            if seq >= len(events) - 1 or len(batch) >= _BATCH:
                yield b"".join(batch)
                batch = []
                if len(events) - 1 - seq > buffer_events:
                    return  # too far behind: the client resumes from its Last-Event-ID
        finished = True
    finally:
        registry.streams -= 1
        record.watchers -= 1
        if not finished and record.cancel_on_disconnect and not run.done:
            run.cancel()


class _RunStream(EventSourceResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            # The client took nothing for send_timeout seconds: drop it; it can resume.
            logger.info("closed a stream whose client stopped reading")


def _keepalive() -> ServerSentEvent:
    return ServerSentEvent(comment="keepalive")


def sse_response(
    frames: AsyncIterator[bytes],
    *,
    headers: dict[str, str],
    keepalive_seconds: float,
    send_timeout: float,
) -> _RunStream:
    """An SSE answer of ready-made ``frames``, with keep-alive comments, ``SSE_HEADERS`` and
    ``headers``; a client that takes no data for ``send_timeout`` seconds is dropped."""
    return _RunStream(
        frames,
        headers={**SSE_HEADERS, **headers},
        ping=keepalive_seconds,
        ping_message_factory=_keepalive,
        send_timeout=send_timeout,
    )


def stream_response(
    record: RunRecord,
    *,
    after: int,
    registry: RunRegistry,
    buffer_events: int,
    keepalive_seconds: float,
    send_timeout: float,
) -> _RunStream:
    """The SSE answer following ``record``'s run from ``seq > after`` to its end."""
    return sse_response(
        _frames(record, after, registry, buffer_events),
        headers={"X-Subtask-Id": record.run.id, "X-Session-Id": record.session_id},
        keepalive_seconds=keepalive_seconds,
        send_timeout=send_timeout,
    )
