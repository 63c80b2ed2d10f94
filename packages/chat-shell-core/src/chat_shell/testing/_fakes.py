"""In-process model doubles: the agent loop without any network."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .._errors import ModelError
from .._models.backend import ChunkAccumulator, ModelBackend, ModelPart, ModelRequest
from .._models.openai_backend import is_retryable_status
from ._recording import Recording
from ._script import Reply, reply_chunks

__all__ = ["FakeModel", "FunctionModel"]

ReplyFunction = Callable[
    [ModelRequest], "Reply | Recording | str | Awaitable[Reply | Recording | str]"
]


class FunctionModel(ModelBackend):
    """A model whose every answer is computed by ``function(request) -> Reply | str`` (or a
    ``Recording`` of an SSE stream, whose events are parsed as a backend parses them).

    The reply goes through the same chunk parser as the real backends, so what the agent sees is
    what a real stream of that reply would give. ``requests`` records each request.
    """

    def __init__(self, function: ReplyFunction, *, model_name: str = "function/model") -> None:
        self.function = function
        self.model_name = model_name
        self.requests: list[ModelRequest] = []

    async def _reply(self, request: ModelRequest) -> Reply | Recording:
        result: Any = self.function(request)
        if inspect.isawaitable(result):
            result = await result
        return Reply.text(result) if isinstance(result, str) else result

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]:
        self.requests.append(request)
        reply = await self._reply(request)
        if isinstance(reply, Recording):  # a raw stream: its events, as a backend reads them
            accumulator = ChunkAccumulator(self.model_name)
            for chunk in reply.events():
                for part in accumulator.feed(chunk):
                    yield part
            for part in accumulator.finish():
                yield part
            return
        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        if reply.status >= 400:
            raise ModelError(
                f"{self.model_name}: HTTP {reply.status}: {reply.error_message}",
                retryable=is_retryable_status(reply.status),
                status_code=reply.status,
            )
        accumulator = ChunkAccumulator()
        for sent, chunk in enumerate(reply_chunks(reply, request.model)):
            if reply.drop_after is not None and sent > reply.drop_after:
                raise ModelError(f"{self.model_name}: connection dropped", retryable=True)
            if reply.stream_error is not None and sent > len(reply.reasoning) + len(reply.chunks):
                raise ModelError(f"{self.model_name}: {reply.stream_error}")
            for part in accumulator.feed(chunk):
                yield part
            if reply.delay:
                await asyncio.sleep(reply.delay)
        for part in accumulator.finish():
            yield part


class FakeModel(FunctionModel):
    """A model that answers with the given replies in order (strings are plain text answers).

    When the replies run out it answers ``"done"``.
    """

    def __init__(self, *replies: Reply | Recording | str, model_name: str = "fake/model") -> None:
        self.replies = list(replies)
        super().__init__(self._pop, model_name=model_name)

    def _pop(self, request: ModelRequest) -> Reply | Recording | str:
        return self.replies.pop(0) if self.replies else "done"
