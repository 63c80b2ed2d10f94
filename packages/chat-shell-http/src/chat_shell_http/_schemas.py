"""Request and response bodies of the HTTP API (events are core's ``ChatEvent``)."""

from __future__ import annotations

from typing import Any, Literal

from chat_shell import Message, RunInfo as CoreRunInfo, SessionInfo, SessionUsage, Usage
from pydantic import BaseModel, ConfigDict, Field

from ._errors import public_error

__all__ = [
    "AppendMessages",
    "ApprovalAnswer",
    "ApprovalDecision",
    "ChatMessage",
    "ChatRequest",
    "HealthInfo",
    "HistoryPage",
    "MessageList",
    "RunInfo",
    "ServerConfig",
    "SessionList",
    "SessionSummary",
    "SessionSummaryList",
    "SessionUpdate",
    "TruncateHistory",
]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class ChatRequest(BaseModel):
    """Start a run: the new messages of a turn (the last one from the user) in a session."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=1000,
        description="the turn's new messages, stored in order; the last must be a non-empty "
        "user message (earlier ones may seed a new conversation)",
    )
    session_id: str | None = Field(
        default=None,
        description="continue this session (created if new); none: a new session",
        max_length=128,
    )
    model: str | None = Field(
        default=None, description="a model from the server's allow-list; none: its default"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    tools: list[str] | None = Field(
        default=None, description="use only these of the server's tools (none: all of them)"
    )
    stream: bool = Field(
        default=True, description="true: answer an SSE stream; false: wait, answer the result"
    )
    cancel_on_disconnect: bool = Field(
        default=False,
        description="cancel the run if the client that started it disconnects (streams only)",
    )


class RunInfo(BaseModel):
    """A run's status, timestamps, output so far and usage: core's run summary as clients
    see it (``RunInfo`` of the run store, without what only chat-shell uses)."""

    run_id: str = Field(description="the run's id (`run_…`), as in its events")
    subtask_id: str = Field(
        description="the same id under its earlier name (deprecated: read `run_id`)",
        json_schema_extra={"deprecated": True},
    )
    session_id: str
    status: Literal[
        "queued", "running", "completed", "failed", "cancelled", "incomplete", "interrupted"
    ] = Field(description="`interrupted`: the server running it stopped before its end")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    content: str = Field(description="the answer so far")
    model: str | None = None
    usage: Usage = Field(default_factory=lambda: Usage())
    error: dict[str, Any] | None = Field(
        default=None,
        description="`{code, message, retryable}` if the run failed (a model failure adds "
        "`model`, and `provider_status` and `retry_after` when known)",
    )
    reason: str | None = Field(
        default=None,
        description="why an `incomplete` or `interrupted` run stopped short (a limit, a cut-off)",
    )
    finish_reason: str | None = Field(
        default=None,
        description="why the model's last answer ended: `stop`, `tool_calls`, `length` (cut "
        "off at max_tokens), `content_filter`",
    )
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    messages_sent: int | None = Field(
        default=None,
        description="messages in the run's last model request (null: none made yet)",
    )
    messages_dropped: int = Field(
        default=0,
        description="messages of the conversation that request left out to fit the model's "
        "context window (they stay stored)",
    )
    messages_summarized: int = Field(
        default=0, description="of those, how many a stored summary stood for"
    )
    last_seq: int = Field(description="seq of the latest event (-1: none yet)")

    @classmethod
    def from_info(cls, info: CoreRunInfo, session_id: str | None = None) -> RunInfo:
        """The run's info (``session_id``: its session as the client knows it)."""
        return cls(
            run_id=info.run_id,
            subtask_id=info.run_id,
            session_id=info.session_id if session_id is None else session_id,
            status=info.status,
            created_at=info.created_at,
            started_at=info.started_at,
            finished_at=info.finished_at,
            content=info.content,
            model=info.model,
            usage=Usage(**info.usage),
            error=public_error(info.error),
            reason=info.reason,
            finish_reason=info.finish_reason,
            tool_calls=info.tool_calls,
            messages_sent=info.messages_sent,
            messages_dropped=info.messages_dropped,
            messages_summarized=info.messages_summarized,
            last_seq=info.last_seq,
        )


class HistoryPage(BaseModel):
    session_id: str
    messages: list[Message]


class SessionList(BaseModel):
    sessions: list[SessionInfo]
    limit: int
    offset: int


class SessionSummary(SessionInfo):
    """A session with what it used: tokens by model and, where known, the cost."""

    usage: SessionUsage


class SessionSummaryList(BaseModel):
    sessions: list[SessionSummary]
    limit: int
    offset: int


class HealthInfo(BaseModel):
    status: Literal["ok", "degraded"]
    storage: Literal["reachable", "unreachable"]
    version: str
    active_runs: int


class ServerConfig(BaseModel):
    """What a client may choose on this server (``GET /v1/config``)."""

    model: str = Field(description="the model a run uses when the request names none")
    allowed_models: list[str] = Field(
        description="models a request may name: names or fnmatch patterns such as 'openai/*'"
    )


class MessageList(BaseModel):
    messages: list[Message]


class AppendMessages(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(max_length=10_000)
    owner: str | None = Field(
        default=None,
        max_length=200,
        description="recorded when this append creates the session",
    )


class TruncateHistory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: int = Field(ge=0, strict=True, description="how many of the first messages stay")


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None


class ApprovalAnswer(BaseModel):
    """The answer to a tool call waiting for approval (an ``approval_required`` event)."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=200, description="the event's `id`")
    approved: bool = Field(description="true: run the tool; false: tell the model no")


class ApprovalDecision(BaseModel):
    """An answer as recorded: the run's call now runs (approved) or is refused."""

    run_id: str
    call_id: str
    name: str = Field(description="the tool")
    approved: bool
