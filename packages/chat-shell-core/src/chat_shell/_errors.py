"""The one error tree of chat-shell.

    class                          code              what it means
    ChatShellError                 internal_error    base of everything chat-shell raises on purpose
    ├── UserError                  user_error        misuse or bad configuration; says how to fix it
    │   └── AmbiguousSessionError  ambiguous_session a session-id prefix naming several sessions
    ├── SessionBusyError           session_busy      the session has a run in progress (``run_id``)
    ├── ModelError                 model_error       the provider failed; an error's ``code`` says
    │                                                how (``MODEL_ERROR_CODES``), ``retryable``
    │                                                whether a second try may help
    ├── ToolError                  tool_error        a tool failed or was called wrongly
    └── StorageError               storage_error     history could not be read or written
        └── NotFoundError          not_found         the session (or run) does not exist

Each class has one ``code``: the ``code`` of a run's ``error`` event, of the server's error
bodies and of the CLI's closing line all come from it, and ``ChatShellError.for_code`` finds the
class again from a code. A new kind of error is a subclass with its own ``code`` (and
``retryable`` if it differs from its parent's); the edges treat it as its parent until they are
told otherwise. The CLI maps classes to exit codes and the HTTP server to status codes, each in
one place. Messages never contain API keys.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "MODEL_ERROR_CODES",
    "AmbiguousSessionError",
    "ChatShellError",
    "ModelError",
    "NotFoundError",
    "SessionBusyError",
    "StorageError",
    "ToolError",
    "UserError",
]


# Every class of the tree by its own code (filled as the classes are defined).
_CLASSES: dict[str, type[ChatShellError]] = {}


class ChatShellError(Exception):
    """Base class of every error chat-shell raises on purpose.

    ``code`` names the class on the wire (events, HTTP bodies, the CLI); ``retryable`` says
    whether the same request may succeed later.
    """

    code: ClassVar[str] = "internal_error"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("code")
        code = own if isinstance(own, str) else getattr(own, "class_code", None)
        if code is None:
            return  # no code of its own: it is its parent on the wire
        taken = _CLASSES.get(code)
        if taken is not None:
            raise TypeError(f"error code {code!r} is already {taken.__qualname__}'s")
        _CLASSES[code] = cls

    @staticmethod
    def for_code(code: str) -> type[ChatShellError] | None:
        """The class a ``code`` of an error event or body stands for (a model failure's class,
        ``rate_limited`` …, is ``ModelError``); ``None`` for a code that names no class
        (``run_timeout``, or an error from a newer chat-shell)."""
        if code in _CLASSES:
            return _CLASSES[code]
        if code in MODEL_ERROR_CODES:
            return ModelError
        return None


_CLASSES[ChatShellError.code] = ChatShellError


class UserError(ChatShellError):
    """Misuse or bad configuration: the message says what to change."""

    code = "user_error"


class SessionBusyError(ChatShellError):
    """The session has a run in progress: one run per session, in every mode.

    ``run_id`` names the run; wait for its end (or cancel it) and try again.
    """

    code = "session_busy"
    retryable = True  # once the run ends

    def __init__(self, session_id: str, run_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"session {session_id} has a run in progress ({run_id}); wait for its end or "
            "cancel it"
        )
        self.session_id = session_id
        self.run_id = run_id


class AmbiguousSessionError(UserError):
    """A session-id prefix matches more than one session: ``matches`` holds some of their ids
    (at most five); giving more of the id picks one."""

    code = "ambiguous_session"

    def __init__(self, message: str, matches: list[str] | None = None) -> None:
        super().__init__(message)
        self.matches = matches or []


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


class _ModelErrorCode:
    """``ModelError.code``: ``model_error`` on the class; on an error, the class of failure,
    given or judged when it is first read (``raise … from cause`` sets the cause late)."""

    class_code = "model_error"

    def __get__(self, error: ModelError | None, owner: type | None = None) -> str:
        if error is None:
            return self.class_code
        if error._code is None:
            return _code_for(error.status_code, error.retryable, error.message, error.__cause__)
        return error._code

    def __set__(self, error: ModelError, value: str) -> None:
        error._code = value


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

    code = _ModelErrorCode()


class ToolError(ChatShellError):
    """A tool failed, timed out, or was called with arguments that do not fit its schema."""

    code = "tool_error"


class StorageError(ChatShellError):
    """History could not be read or written."""

    code = "storage_error"
    retryable = True


class NotFoundError(StorageError):
    """The session or run does not exist (or belongs to someone else)."""

    code = "not_found"
    retryable = False
