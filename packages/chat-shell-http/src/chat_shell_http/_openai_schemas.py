"""Bodies of the OpenAI-compatible routes (``/v1/chat/completions``, ``/v1/models``).

Requests take what OpenAI clients send: parameters chat-shell cannot honour are refused (422,
``param`` names them) rather than silently dropped, and unknown ones are ignored, as OpenAI
clients send many (``top_p``, ``user``, ``seed`` …). Answers are OpenAI's objects plus two
documented extensions a strict client ignores: ``reasoning_content`` (the model's thinking) and
``chat_shell`` (the run: its status, tool calls and results).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from chat_shell import Message, ToolCall
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ModelList",
    "OpenAIErrorBody",
    "OpenAIErrorInfo",
]

_TEXT_LIMIT = 1_000_000


def _text(content: str | list[dict[str, Any]] | None) -> str | None:
    """Content as text: a string, or the text of a list of text parts."""
    if content is None or isinstance(content, str):
        return content
    texts = []
    for part in content:
        kind = part.get("type")
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ValueError(f"only text content parts are supported (not {kind!r})")
        texts.append(part["text"])
    return "".join(texts)


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=200)
    arguments: str = Field(max_length=_TEXT_LIMIT, description="a JSON object, as text")

    @field_validator("arguments")
    @classmethod
    def _an_object(cls, value: str) -> str:
        try:
            parsed = json.loads(value or "{}")
        except ValueError:
            raise ValueError("the arguments of a tool call must be a JSON object") from None
        if not isinstance(parsed, dict):
            raise ValueError("the arguments of a tool call must be a JSON object")
        return value


class AssistantToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class InputMessage(BaseModel):
    """One message of the conversation, as OpenAI clients send it (``developer`` is a system
    message; unknown fields such as ``name`` are ignored)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = Field(
        default=None, description="text, or a list of text parts"
    )
    tool_calls: list[AssistantToolCall] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = Field(default=None, max_length=200)

    @field_validator("content")
    @classmethod
    def _text_only(
        cls, value: str | list[dict[str, Any]] | None
    ) -> str | list[dict[str, Any]] | None:
        text = _text(value)
        if text is not None and len(text) > _TEXT_LIMIT:
            raise ValueError(f"a message holds at most {_TEXT_LIMIT} characters")
        return value

    @model_validator(mode="after")
    def _fits_its_role(self) -> InputMessage:
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self

    @property
    def text(self) -> str | None:
        return _text(self.content)

    def to_message(self) -> Message:
        """The message as chat-shell keeps it."""
        role = "system" if self.role == "developer" else self.role
        calls = [
            ToolCall(
                id=c.id, name=c.function.name, arguments=json.loads(c.function.arguments or "{}")
            )
            for c in self.tool_calls or ()
        ]
        return Message(
            role=role,
            content=self.text,
            tool_calls=calls or None,
            tool_call_id=self.tool_call_id if role == "tool" else None,
        )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = Field(
        default=False, description="true: a last chunk (empty `choices`) carries the usage"
    )


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the conversation; the last message is the user's turn."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=500, description="one of `GET /v1/models`")
    messages: list[InputMessage] = Field(
        min_length=1,
        max_length=10_000,
        description="the conversation, oldest first; the last must be a user message",
    )
    stream: bool = Field(default=False, description="true: SSE chunks, then `data: [DONE]`")
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_completion_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    max_tokens: int | None = Field(
        default=None, gt=0, le=1_000_000, description="older name of max_completion_tokens"
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="`session_id`: store the turn in this chat-shell session (as the "
        "`X-Session-Id` header)",
    )
    # Honoured as far as chat-shell can, refused beyond: it answers once, runs its own tools
    # and does not constrain the model's output.
    n: int | None = Field(default=None, description="only 1")
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description="`auto` (the agent chooses) or `none` (no tools this turn)"
    )
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="not supported (empty only): the server runs its own tools"
    )
    functions: list[dict[str, Any]] | None = Field(
        default=None, description="not supported (empty only): the server runs its own tools"
    )
    stop: str | list[str] | None = Field(default=None, description="not supported (empty only)")
    response_format: dict[str, Any] | None = Field(default=None, description="`text` only")
    logprobs: bool | None = Field(default=None, description="not supported (false only)")

    @field_validator("messages")
    @classmethod
    def _ends_with_the_user(cls, value: list[InputMessage]) -> list[InputMessage]:
        if value and value[-1].role != "user":
            raise ValueError(
                "the last message must be the user's: the server runs the tools itself, so a "
                "conversation never ends with a tool result or an assistant message"
            )
        return value

    @field_validator("n")
    @classmethod
    def _one(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("chat-shell gives one answer per request: n must be 1")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _server_tools(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if value not in (None, "auto", "none"):
            raise ValueError(
                "the server's agent chooses among its own tools: tool_choice is `auto` or `none`"
            )
        return value

    @field_validator("tools", "functions")
    @classmethod
    def _no_client_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError(
                "client-side tools are not supported: chat-shell runs its own tools on the server"
            )
        return value

    @field_validator("stop")
    @classmethod
    def _no_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value:
            raise ValueError("stop sequences are not supported")
        return value

    @field_validator("response_format")
    @classmethod
    def _plain_text(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") != "text":
            raise ValueError("only the `text` response format is supported (no JSON mode)")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("log probabilities are not supported")
        return value

    @field_validator("metadata")
    @classmethod
    def _session_id_text(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and "session_id" in value and not isinstance(value["session_id"], str):
            raise ValueError("metadata.session_id must be a string")
        return value

    @property
    def session_id(self) -> str | None:
        return self.metadata.get("session_id") if self.metadata else None

    @property
    def output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, usage: Mapping[str, Any]) -> CompletionUsage:
        """The run's usage (every model call of the turn); what the provider did not say is 0."""
        prompt = usage.get("prompt_tokens", 0)
        completion = usage.get("completion_tokens", 0)
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=usage.get("total_tokens", prompt + completion),
        )


FinishReason = Literal["stop", "length", "content_filter"]


class RunExtension(BaseModel):
    """``chat_shell`` of a completion: what the agent did to answer."""

    run_id: str
    session_id: str | None = Field(
        description="the session the turn is stored in (none: stateless)"
    )
    status: str = Field(description="the run's status: completed, incomplete, cancelled …")
    reason: str | None = Field(default=None, description="why an incomplete run stopped short")
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the tools the server ran: `{id, name, arguments, result | error}`",
    )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    reasoning_content: str | None = Field(
        default=None, description="the model's thinking, when it gives it (extension)"
    )


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    """The answer of a request with ``stream: false``."""

    id: str = Field(description="the run's id (`GET /v1/response/{id}` knows it)")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    chat_shell: RunExtension


class ChunkEvent(BaseModel):
    """``chat_shell`` of a chunk: a ``tool_call`` or ``tool_result`` event of the run."""

    event_type: Literal["tool_call", "tool_result"]
    data: dict[str, Any]
    seq: int


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` frame of a stream (documentation: the frames are written directly)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(description="empty in the last chunk, the usage one")
    usage: CompletionUsage | None = None
    chat_shell: ChunkEvent | None = None


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "chat-shell"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class OpenAIErrorInfo(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, server_error …")
    param: str | None = Field(description="the request field at fault, when one is")
    code: str = Field(description="chat-shell's error code (as on the rest of the API)")
    retryable: bool = Field(description="whether the same request may succeed later (extension)")


class OpenAIErrorBody(BaseModel):
    """The error answer of the OpenAI-compatible routes."""

    error: OpenAIErrorInfo
