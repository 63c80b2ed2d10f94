"""Server-sent events: a run's events as ``event:``/``id:``/``data:`` frames.

Frames are built with ``json.dumps`` of a plain dict (one per streamed token: the hot path),
and every event already waiting is sent in one write. A live stream of a run this process
runs that falls more than ``buffer_events`` behind it is cut (the connection closed, without a
``complete`` event); the client resumes with ``Last-Event-ID``. A finished run, or a run read
from the run store, is sent whole at the client's pace. The run never waits for a stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from chat_shell import ChatEvent, RunManager
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from ._connections import abort_connection
from ._errors import public_error
from ._runs import RunRecord, RunRegistry

__all__ = [
    "SSE_HEADERS",
    "TooFarBehind",
    "encode_event",
    "event_payload",
    "sse_response",
    "stream_response",
]

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


class TooFarBehind(Exception):
    """A live stream fell too far behind its run: its connection is closed (resume then)."""


async def _frames(
    record: RunRecord, after: int, registry: RunRegistry, buffer_events: int
) -> AsyncIterator[bytes]:
    run = record.run
    manager: RunManager = registry.manager
    registry.streams += 1
    registry.watchers[record.run_id] += 1
    finished = False
    session_id = record.session_id
    try:
        batch: list[bytes] = []
        if run is None:  # another process runs it, or it has ended: read it from the store
            async for event in manager.follow(record.run_id, after):
                batch.append(encode_event(event, session_id))
                if len(batch) >= _BATCH:
                    yield b"".join(batch)
                    batch = []
                elif event.event_type == "complete":
                    break
                else:
                    yield b"".join(batch)
                    batch = []
            if batch:
                yield b"".join(batch)
        else:
            events = run.events
            async for event in run.follow(after):
                batch.append(encode_event(event, session_id))
                seq = event.seq
                if seq >= len(events) - 1 or len(batch) >= _BATCH:
                    yield b"".join(batch)
                    batch = []
                    if not run.done and len(events) - 1 - seq > buffer_events:
                        raise TooFarBehind
                events = run.events
        finished = True
    finally:
        registry.streams -= 1
        registry.watchers[record.run_id] -= 1
        if registry.watchers[record.run_id] <= 0:
            del registry.watchers[record.run_id]
        if not finished and record.cancel_on_disconnect and run is not None and not run.done:
            run.cancel()


class _RunStream(EventSourceResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except BaseException as exc:
            # The client took nothing for send_timeout seconds, or fell too far behind a live
            # run: drop it (socket and send queue at once); it can resume.
            cut = _find(exc, (SendTimeoutError, TooFarBehind))
            if cut is None:
                raise
            abort_connection()
            logger.info(
                "closed a stream whose client %s",
                "stopped reading" if isinstance(cut, SendTimeoutError) else "fell too far behind",
            )


def _find(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """``exc`` or the first of its exception group's members that is one of ``kinds``."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kinds)
            if found is not None:
                return found
    return None


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
        headers={
            "X-Run-Id": record.run_id,
            "X-Subtask-Id": record.run_id,
            "X-Session-Id": record.session_id,
        },
        keepalive_seconds=keepalive_seconds,
        send_timeout=send_timeout,
    )
