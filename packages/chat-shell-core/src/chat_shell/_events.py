"""The one event stream: every mode (library, HTTP, CLI) carries these objects unchanged."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

__all__ = [
    "ApprovalRequiredData",
    "ChatEvent",
    "CompleteData",
    "ContentData",
    "ErrorData",
    "EventType",
    "RunStatus",
    "ThinkingData",
    "ToolCallData",
    "ToolResultData",
    "Usage",
]


class EventType(StrEnum):
    CONTENT = "content"
    THINKING = "thinking"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    APPROVAL_REQUIRED = "approval_required"
    ERROR = "error"
    COMPLETE = "complete"


RunStatus = Literal["completed", "failed", "cancelled", "incomplete"]


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ContentData(TypedDict):
    delta: str


class ThinkingData(TypedDict):
    delta: str


class ToolCallData(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]


class ToolResultData(TypedDict, total=False):
    id: str
    name: str
    result: str
    error: str
    duration_ms: float


class ApprovalRequiredData(TypedDict):
    """A tool call waits for a yes or no: ``expires_at`` (Unix seconds) is when it counts as a
    no if unanswered over HTTP; ``None`` when a callback (library, terminal) is asked."""

    id: str
    name: str
    arguments: dict[str, Any]
    expires_at: float | None


class ErrorData(TypedDict):
    code: str
    message: str
    retryable: bool


class CompleteData(TypedDict, total=False):
    status: RunStatus
    content: str
    usage: Usage
    model: str | None
    reason: str
    finish_reason: str
    messages_sent: int
    messages_dropped: int
    messages_summarized: int


class ChatEvent(BaseModel):
    """One event of a run.

    ``seq`` starts at 0 and grows by one per event of the run; it is the SSE ``id:`` and what a
    client names to resume a stream. ``data`` holds the event type's fields (see the ``*Data``
    types): ``content``/``thinking`` → ``delta``; ``tool_call`` → ``id, name, arguments``;
    ``tool_result`` → ``id, name, result | error, duration_ms``;
    ``approval_required`` → ``id, name, arguments, expires_at``; ``error`` → ``code, message,
    retryable``; ``complete`` → ``status, content, usage, model`` (and ``messages_sent``,
    ``messages_dropped``, ``messages_summarized``: the last model request's share of the
    conversation).
    """

    model_config = ConfigDict(frozen=True)

    event_type: EventType
    data: dict[str, Any] = Field(default_factory=dict)
    run_id: str
    session_id: str
    seq: int = Field(ge=0)
    timestamp: float = Field(description="Unix time in seconds")

    @classmethod
    def make(
        cls,
        event_type: EventType,
        data: dict[str, Any],
        *,
        run_id: str,
        session_id: str,
        seq: int,
    ) -> ChatEvent:
        """Build an event without validation (the hot path: one per streamed token)."""
        return cls.model_construct(
            event_type=event_type,
            data=data,
            run_id=run_id,
            session_id=session_id,
            seq=seq,
            timestamp=time.time(),
        )

    @property
    def delta(self) -> str:
        """The text of a ``content`` or ``thinking`` event ('' for other types)."""
        value = self.data.get("delta", "")
        return value if isinstance(value, str) else ""
