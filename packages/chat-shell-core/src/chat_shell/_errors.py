"""The one error tree of chat-shell.

    ChatShellError                 base of everything chat-shell raises on purpose
    ├── UserError                  misuse or bad configuration; the message says how to fix it
    ├── ModelError                 the provider failed; ``retryable``: may a second try help?
    ├── ToolError                  a tool failed or was called wrongly
    └── StorageError               history could not be read or written
        └── NotFoundError          the session (or run) does not exist

The CLI maps these to exit codes and the HTTP server to status codes, each in one place.
Messages never contain API keys.
"""

from __future__ import annotations

__all__ = [
    "ChatShellError",
    "ModelError",
    "NotFoundError",
    "StorageError",
    "ToolError",
    "UserError",
]


class ChatShellError(Exception):
    """Base class of every error chat-shell raises on purpose."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserError(ChatShellError):
    """Misuse or bad configuration: the message says what to change."""

    code = "user_error"


class ModelError(ChatShellError):
    """The model provider failed.

    ``retryable`` is true for failures that may pass on a second try (rate limits, timeouts,
    5xx answers, dropped connections) and false for the rest (bad key, bad request).
    ``retry_after`` is how long the provider asked to wait before a retry (seconds, from a
    ``Retry-After`` header), if it said.
    """

    code = "model_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status_code: int | None = None,
        model: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.model = model
        self.retry_after = retry_after


class ToolError(ChatShellError):
    """A tool failed, timed out, or was called with arguments that do not fit its schema."""

    code = "tool_error"


class StorageError(ChatShellError):
    """History could not be read or written."""

    code = "storage_error"


class NotFoundError(StorageError):
    """The session or run does not exist (or belongs to someone else)."""

    code = "not_found"
