"""The seam between the agent and a model: requests in, a stream of parts out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChunkAccumulator",
    "ModelBackend",
    "ModelPart",
    "ModelRequest",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallPart",
    "UsagePart",
]


@dataclass(slots=True, frozen=True)
class TextDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ToolCallPart:
    """A complete tool call; ``arguments`` is the JSON text exactly as the model produced it."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True, frozen=True)
class UsagePart:
    usage: dict[str, int]


ModelPart = TextDelta | ReasoningDelta | ToolCallPart | UsagePart


# Seconds, the defaults of the config keys of the same names (docs/models.md): connecting (TLS
# and proxy included); from sending a request to the first bytes of its answer; the longest
# silence within an answer.
CONNECT_TIMEOUT = 10.0
FIRST_BYTE_TIMEOUT = 60.0
READ_TIMEOUT = 60.0


@dataclass(slots=True)
class ModelRequest:
    """One model call. ``model`` is the provider's own name (``gpt-4o-mini`` for OpenAI
    backends, the full litellm name for litellm). ``timeout`` bounds the whole call; the
    OpenAI-protocol client also bounds connecting, the wait for a first byte and each silence
    within the answer, and trusts ``ca_bundle`` (a PEM file or folder) instead of the system's
    CAs when it is set."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 600.0
    connect_timeout: float = CONNECT_TIMEOUT
    first_byte_timeout: float = FIRST_BYTE_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    ca_bundle: str | None = None


class ModelBackend(ABC):
    """Streams one model call as ``ModelPart`` objects.

    Text and reasoning arrive as deltas; tool calls arrive complete after the text; usage last.
    Failures raise ``ModelError`` (``retryable`` set as the cause deserves).
    """

    model_name: str = "custom"

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]: ...

    async def aclose(self) -> None:
        """Release connections; the default has none."""
        return


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChunkAccumulator:
    """Turns OpenAI-format streaming chunks (as dicts) into model parts.

    Both backends feed it, which is what makes them produce the same events for the same
    upstream stream.
    """

    __slots__ = ("_calls", "finished", "usage")

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}
        self.usage: dict[str, int] | None = None
        self.finished = False

    def feed(self, chunk: dict[str, Any]) -> Iterator[ModelPart]:
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning:
                    yield ReasoningDelta(reasoning)
                content = delta.get("content")
                if content:
                    yield TextDelta(content)
                tool_calls = delta.get("tool_calls")
                if tool_calls:
                    self._add_tool_deltas(tool_calls)
            if choice.get("finish_reason"):
                self.finished = True
        usage = chunk.get("usage")
        if usage:
            self.usage = {
                key: int(usage[key])
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
                if isinstance(usage.get(key), int)
            }

    def _add_tool_deltas(self, deltas: list[dict[str, Any]]) -> None:
        for position, delta in enumerate(deltas):
            index = delta.get("index", position)
            call = self._calls.setdefault(index, _PendingCall())
            if delta.get("id"):
                call.id = delta["id"]
            function = delta.get("function") or {}
            if function.get("name"):
                call.name += function["name"]
            if function.get("arguments"):
                call.arguments.append(function["arguments"])

    def finish(self) -> Iterator[ModelPart]:
        """The complete tool calls (in the model's order), then usage."""
        for index in sorted(self._calls):
            call = self._calls[index]
            yield ToolCallPart(
                id=call.id or f"call_{index}", name=call.name, arguments="".join(call.arguments)
            )
        self._calls.clear()
        if self.usage:
            yield UsagePart(self.usage)
