"""The seam between the agent and a model: requests in, a stream of parts out."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._errors import ModelError

__all__ = [
    "ChunkAccumulator",
    "FinishPart",
    "ModelBackend",
    "ModelPart",
    "ModelRequest",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallPart",
    "UsagePart",
    "parse_retry_after",
    "stream_error",
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


@dataclass(slots=True, frozen=True)
class FinishPart:
    """Why the model stopped, in OpenAI's words: ``stop``, ``tool_calls``, ``length`` (the
    ``max_tokens`` limit cut the answer off), ``content_filter`` …"""

    reason: str


ModelPart = TextDelta | ReasoningDelta | ToolCallPart | FinishPart | UsagePart


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

    Text and reasoning arrive as deltas; tool calls arrive complete after the text, then why
    the answer ended (``FinishPart``, when the provider says), usage last. Failures raise
    ``ModelError`` (``retryable`` set as the cause deserves).
    """

    model_name: str = "custom"

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]: ...

    def check_model(self, model: str) -> None:
        """Raise ``UserError`` if this backend cannot call ``model`` here (a dependency that
        is not installed, say), before a run starts: a fallback model that cannot work is
        then left out with a warning. The default can call every model."""
        return

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
    upstream stream. Tool-call deltas are joined the way real servers send them:

    - by ``index`` (OpenAI, vLLM, llama.cpp); a delta with a new ``id`` under an index already
      used starts a new call (servers that number every call 0);
    - without ``index`` (Gemini's OpenAI-compatible API): by ``id``, else a delta naming a
      function starts a new call and one without a name continues the last call;
    - the function name is taken as given, not joined: llama-cpp-python repeats the whole name
      in every delta, and no server splits a name across deltas.

    An ``error`` object in the stream raises ``ModelError`` (see ``stream_error``; ``where``
    names the model in its message, ``secret`` is masked in it).
    """

    __slots__ = (
        "_by_id",
        "_by_index",
        "_calls",
        "_secret",
        "finish_reason",
        "finished",
        "usage",
        "where",
    )

    def __init__(self, where: str = "the model", secret: str | None = None) -> None:
        self._calls: list[_PendingCall] = []
        self._by_index: dict[int, _PendingCall] = {}
        self._by_id: dict[str, _PendingCall] = {}
        self.usage: dict[str, int] | None = None
        self.finished = False
        self.finish_reason: str | None = None
        self.where = where
        self._secret = secret

    def feed(self, chunk: dict[str, Any]) -> Iterator[ModelPart]:
        if "error" in chunk:
            raise stream_error(chunk["error"], self.where, self._secret)
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
            reason = choice.get("finish_reason")
            if reason:
                self.finished = True
                self.finish_reason = str(reason)
        usage = chunk.get("usage")
        if usage:
            self.usage = {
                key: int(usage[key])
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
                if isinstance(usage.get(key), int)
            }

    def _call_for(self, delta: dict[str, Any], named: bool) -> _PendingCall:
        call_id = delta.get("id") or ""
        index = delta.get("index")
        if call_id and call_id in self._by_id:
            return self._by_id[call_id]
        if isinstance(index, int):
            call = self._by_index.get(index)
            if call is not None and not (call_id and call.id and call_id != call.id):
                return call
        elif not call_id and not named and self._calls:
            return self._calls[-1]  # an indexless continuation
        call = _PendingCall()
        self._calls.append(call)
        if isinstance(index, int):
            self._by_index[index] = call
        return call

    def _add_tool_deltas(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            function = delta.get("function") or {}
            name = function.get("name")
            call = self._call_for(delta, bool(name))
            call_id = delta.get("id")
            if call_id and not call.id:
                call.id = call_id
                self._by_id[call_id] = call
            if name:
                call.name = name
            arguments = function.get("arguments")
            if arguments:
                # Some servers send the arguments as an object rather than JSON text.
                call.arguments.append(
                    arguments if isinstance(arguments, str) else json.dumps(arguments)
                )

    def finish(self) -> Iterator[ModelPart]:
        """The complete tool calls (in the model's order), how the answer ended, then usage."""
        reason = self.finish_reason
        if reason == "stop" and self._calls:
            reason = "tool_calls"  # Gemini's OpenAI-compatible API says "stop" (litellm mends it)
        for number, call in enumerate(self._calls):
            yield ToolCallPart(
                id=call.id or f"call_{number}", name=call.name, arguments="".join(call.arguments)
            )
        self._calls.clear()
        self._by_index.clear()
        self._by_id.clear()
        if reason:
            yield FinishPart(reason)
        if self.usage:
            yield UsagePart(self.usage)


def _status_of(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


# Error types of in-stream errors that say "try again" (OpenAI, Anthropic, llama.cpp, vLLM).
_RETRYABLE_TYPES = frozenset(
    {
        "server_error",
        "internal_error",
        "internal_server_error",
        "api_error",
        "overloaded_error",
        "unavailable_error",
        "service_unavailable",
        "timeout_error",
        "rate_limit_error",
        "rate_limit_exceeded",
    }
)


def stream_error(error: Any, where: str, secret: str | None = None) -> ModelError:
    """The ``ModelError`` for an ``error`` object sent inside a stream (with a 200 status).

    It is judged as an HTTP answer would be: by its ``code`` or ``status`` when numeric (a
    "model is loading" ``503`` is retryable), else by its ``type`` (``server_error``,
    ``overloaded_error`` … are retryable), else it is not retryable. Both backends use it.
    """
    message: Any = error
    status: int | None = None
    kind = ""
    if isinstance(error, dict):
        message = error.get("message") or error.get("error") or "error"
        status = _status_of(error.get("code")) or _status_of(error.get("status"))
        kind = str(error.get("type") or "")
    text = str(message)
    if secret:
        text = text.replace(secret, "****")
    if status is not None:
        retryable = status in (408, 409, 425, 429) or status >= 500
    else:
        retryable = kind.lower() in _RETRYABLE_TYPES
    code = "rate_limited" if "rate_limit" in kind.lower() else None
    return ModelError(f"{where}: {text[:300]}", retryable=retryable, status_code=status, code=code)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # only for the rare HTTP-date form

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf
        return None
    return max(seconds, 0.0)
