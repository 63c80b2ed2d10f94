"""The one error tree of chat-shell.

    ChatShellError                 base of everything chat-shell raises on purpose
    ├── UserError                  misuse or bad configuration; the message says how to fix it
    ├── SessionBusyError           the session has a run in progress (``run_id`` names it)
    ├── ModelError                 the provider failed; ``code`` says how (``MODEL_ERROR_CODES``),
    │                              ``retryable`` whether a second try may help
    ├── ToolError                  a tool failed or was called wrongly
    └── StorageError               history could not be read or written
        └── NotFoundError          the session (or run) does not exist

The CLI maps these to exit codes and the HTTP server to status codes, each in one place.
Messages never contain API keys.
"""

from __future__ import annotations

__all__ = [
    "MODEL_ERROR_CODES",
    "ChatShellError",
    "ModelError",
    "NotFoundError",
    "SessionBusyError",
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


class SessionBusyError(ChatShellError):
    """The session has a run in progress: one run per session, in every mode.

    ``run_id`` names the run; wait for its end (or cancel it) and try again.
    """

    code = "session_busy"

    def __init__(self, session_id: str, run_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"session {session_id} has a run in progress ({run_id}); wait for its end or "
            "cancel it"
        )
        self.session_id = session_id
        self.run_id = run_id


# How a model call failed: the codes of ``ModelError`` (and of the run's ``error`` event), each
# with the words a client is shown for it.
MODEL_ERROR_CODES: dict[str, str] = {
    "authentication": "the model provider refused the credentials",
    "rate_limited": "the model provider is rate-limiting requests",
    "unavailable": "the model provider is unavailable or cannot be reached",
    "timeout": "the model provider did not answer in time",
    "bad_request": "the model provider refused the request",
    "model_not_found": "the model provider does not know this model (or the endpoint is wrong)",
    "context_length_exceeded": "the conversation is too long for the model's context window",
    "no_output": "the model returned no output",
    "bad_response": "the model provider sent an answer that cannot be used",
    "model_error": "the model provider failed",
}

_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "exceeds the context",
)


def _code_for(status: int | None, retryable: bool, message: str, cause: object) -> str:
    if status in (401, 403):
        return "authentication"
    if status == 429:
        return "rate_limited"
    if status in (408, 504):
        return "timeout"
    if status == 404:
        return "model_not_found"
    if status is not None and 400 <= status < 500:
        if any(word in message.lower() for word in _CONTEXT_WORDS):
            return "context_length_exceeded"
        return "unavailable" if retryable else "bad_request"
    if status is not None and status >= 500:
        return "unavailable"
    if status is not None and 300 <= status < 400:
        return "bad_response"
    while cause is not None:  # a timeout anywhere down the chain of causes
        if isinstance(cause, TimeoutError):
            return "timeout"
        cause = getattr(cause, "__cause__", None)
    return "unavailable" if retryable else "model_error"


class ModelError(ChatShellError):
    """The model provider failed.

    ``retryable`` is true for failures that may pass on a second try (rate limits, timeouts,
    5xx answers, dropped connections) and false for the rest (bad key, bad request).
    ``retry_after`` is the wait in seconds the provider asked for (``Retry-After``), if any.
    ``code`` is one of ``MODEL_ERROR_CODES``: given, or judged from the HTTP status, the
    message and the cause (a ``TimeoutError`` is ``timeout``).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status_code: int | None = None,
        model: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.model = model
        self.retry_after = retry_after
        self._code = code

    @property
    def code(self) -> str:
        if self._code is None:
            return _code_for(self.status_code, self.retryable, self.message, self.__cause__)
        return self._code

    @code.setter
    def code(self, value: str) -> None:
        self._code = value


class ToolError(ChatShellError):
    """A tool failed, timed out, or was called with arguments that do not fit its schema."""

    code = "tool_error"


class StorageError(ChatShellError):
    """History could not be read or written."""

    code = "storage_error"


class NotFoundError(StorageError):
    """The session or run does not exist (or belongs to someone else)."""

    code = "not_found"
