"""Scripted model replies, as the OpenAI streaming chunks a real server would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reply", "ScriptedToolCall", "reply_chunks"]


@dataclass
class ScriptedToolCall:
    name: str
    arguments: str | dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    """One scripted answer of the model.

    ``chunks`` are streamed one per SSE event (``Reply.tokens(n)`` makes ``n`` distinct ones);
    ``reasoning`` chunks come first, then text, then ``tool_calls`` (arguments split across
    several deltas, as real servers do), then usage. ``status`` ≥ 400 answers an error instead;
    ``stream_error`` sends an error event after the chunks; ``drop_after`` closes the connection
    after that many chunks; ``hold_after`` stops sending after that many chunks and keeps the
    connection open until the client hangs up; ``delay`` waits between chunks (seconds).

    What real servers also do (the scripted server acts these out; the in-process fakes ignore
    them): ``body`` is sent as the answer's body as it is (with ``content_type``, ``""`` for
    none; in pieces of ``piece_size`` bytes, each flushed, if set); ``not_streamed`` answers a
    streaming request with one JSON ``chat.completion``; ``content_encoding`` (``gzip`` or
    ``deflate``) compresses the body as it streams; ``location`` makes a 3xx ``status`` a
    redirect; ``headers`` are added to the answer.
    """

    chunks: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)
    usage: dict[str, int] | None = None
    status: int = 200
    error_message: str = "scripted error"
    stream_error: str | None = None
    drop_after: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    hold_after: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    piece_size: int | None = None
    not_streamed: bool = False
    content_encoding: str | None = None
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, **options: Any) -> Reply:
        """``text`` streamed word by word (spaces kept)."""
        words = text.split(" ")
        chunks = [word if i == 0 else " " + word for i, word in enumerate(words)]
        return cls(chunks=[c for c in chunks if c], **options)

    @classmethod
    def tokens(cls, count: int, **options: Any) -> Reply:
        """``count`` distinct tokens: ``t0 t1 t2 …`` (each token is one chunk)."""
        return cls(chunks=[f"t{i} " for i in range(count)], **options)

    @classmethod
    def tool(cls, name: str, arguments: str | dict[str, Any], **options: Any) -> Reply:
        """A reply that calls one tool."""
        return cls(tool_calls=[ScriptedToolCall(name, arguments)], **options)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", **options: Any) -> Reply:
        return cls(status=status, error_message=message, **options)

    @classmethod
    def raw(cls, body: bytes, content_type: str = "text/event-stream", **options: Any) -> Reply:
        """An answer whose body is ``body``, byte for byte (``content_type=""``: no header)."""
        return cls(body=body, content_type=content_type, **options)

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Reply:
        return cls(status=status, location=location)

    def usage_for(self, prompt_tokens: int = 10) -> dict[str, int]:
        if self.usage is not None:
            return self.usage
        completion = len(self.chunks) + len(self.reasoning) + 5 * len(self.tool_calls)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def reply_chunks(reply: Reply, model: str = "scripted") -> Iterator[dict[str, Any]]:
    """The chunks of a successful stream, up to (not including) ``[DONE]``."""
    yield _chunk(model, {"role": "assistant", "content": ""})
    for text in reply.reasoning:
        yield _chunk(model, {"reasoning_content": text})
    for text in reply.chunks:
        yield _chunk(model, {"content": text})
    for index, call in enumerate(reply.tool_calls):
        call_id = call.id or f"call_{index}_{call.name}"
        yield _chunk(
            model,
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            },
        )
        text = call.arguments_text
        for start in range(0, len(text), 8):
            piece = {"index": index, "function": {"arguments": text[start : start + 8]}}
            yield _chunk(model, {"tool_calls": [piece]})
    yield _chunk(model, {}, "tool_calls" if reply.tool_calls else "stop")
    usage_chunk = _chunk(model, {})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = reply.usage_for()
    yield usage_chunk


def completion_body(reply: Reply, model: str = "scripted") -> dict[str, Any]:
    """The same reply as a non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.chunks) or None}
    if reply.reasoning:
        message["reasoning_content"] = "".join(reply.reasoning)
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{i}_{call.name}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_text},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": reply.usage_for(),
    }
