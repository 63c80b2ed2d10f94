"""Messages as stored in history and sent to models."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._errors import UserError

__all__ = ["Message", "Role", "SessionInfo", "ToolCall", "validate_session_id"]

Role = Literal["system", "user", "assistant", "tool"]

_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def validate_session_id(session_id: str) -> str:
    """Return ``session_id`` if it is a valid session id, else raise ``UserError``.

    Valid ids are 1-128 characters of ``A-Z a-z 0-9 . _ : -`` starting with a letter or digit,
    so an id can never name a path outside a storage folder.
    """
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise UserError(
            f"invalid session id {session_id!r}: use 1-128 letters, digits, '.', '_', ':' or '-',"
            " starting with a letter or digit"
        )
    return session_id


class ToolCall(BaseModel):
    """A tool call the assistant made: ``arguments`` is the parsed JSON object."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One message of a conversation.

    ``metadata`` holds what the run learned about it: for assistant messages ``model``,
    ``usage``, ``latency_ms`` and ``status`` (``completed``, ``cancelled``, ``incomplete``,
    ``failed``); for tool messages ``duration_ms`` and ``is_error``.
    """

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    timestamp: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_model_dict(self) -> dict[str, Any]:
        """The message in the OpenAI chat format that model backends send."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in self.tool_calls
            ]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out


class SessionInfo(BaseModel):
    """A session as listed by ``HistoryStorage.list_sessions``."""

    id: str
    title: str | None = None
    owner: str | None = None
    created_at: float
    updated_at: float
    message_count: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
