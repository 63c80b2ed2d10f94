"""Errors of the OpenAI-compatible routes in OpenAI's shape.

Every error of the server is made once, in its one shape (``_errors``); on
``/v1/chat/completions`` and ``/v1/models`` the outermost middleware here rewrites that body to
``{"error": {"message", "type", "param", "code", "retryable"}}`` — whoever raised it: a route,
the key check, the rate limit, validation, the request limits or the Host check. ``code``,
``message``, ``retryable``, the status and the headers stay as they were.
"""

from __future__ import annotations

import json
import math
from typing import Any

from chat_shell import ChatShellError, ModelError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import ApiError, public_error, status_for

__all__ = ["OPENAI_PATHS", "OpenAIErrorShape", "openai_error", "run_failure"]

OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})

_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}

# How a run that failed with a model error answers, by the class of failure: what a client
# should make of it. Another model failure answers 503 if retrying may help, else 502; a failure
# of another class answers its class's status (``status_for``), and a code that names no class
# (a run's own time limit aside) is taken for a model failure.
_MODEL_STATUS = {
    "rate_limited": 429,
    "bad_request": 400,
    "context_length_exceeded": 400,
    "timeout": 504,
    "unavailable": 503,
}
_RUN_TIMEOUT = "run_timeout"


def _run_status(code: str, retryable: bool) -> int:
    if code in _MODEL_STATUS:
        return _MODEL_STATUS[code]
    if code == _RUN_TIMEOUT:
        return 504
    error_class = ChatShellError.for_code(code)
    if error_class is None or issubclass(error_class, ModelError):
        return 503 if retryable else 502
    return status_for(error_class)


def openai_error(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    retryable: bool = False,
) -> dict[str, Any]:
    """The OpenAI error body for an answer of ``status``."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {"message": message, "type": kind, "param": param, "code": code}
    return {"error": {**error, "retryable": retryable}}


def run_failure(error: dict[str, Any], headers: dict[str, str] | None = None) -> ApiError:
    """The answer for a run that failed with ``error`` (its ``error`` event's data), with
    ``headers`` (the run's ids)."""
    shown = public_error(error) or error
    code = str(shown.get("code") or "error")
    retryable = bool(shown.get("retryable"))
    status = _run_status(code, retryable)
    retry_after = shown.get("retry_after")
    headers = dict(headers or {})
    if isinstance(retry_after, int | float) and retry_after >= 0:
        headers["Retry-After"] = str(math.ceil(retry_after))
    message = str(shown.get("message") or "the run failed")
    return ApiError(status, code, message, retryable=retryable, headers=headers)


def _param(details: Any) -> tuple[str | None, str | None]:
    """The field at fault and what is wrong with it, from validation ``details``."""
    if not isinstance(details, list) or not details or not isinstance(details[0], dict):
        return None, None
    first = details[0]
    loc = [str(part) for part in first.get("loc", [])]
    if loc[:1] in (["body"], ["header"], ["query"]):
        loc = loc[1:]
    param = ".".join(loc) or None
    problem = str(first.get("msg", "")).removeprefix("Value error, ")
    more = len(details) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return param, problem


def _reshape(status: int, body: bytes) -> bytes | None:
    """The OpenAI form of the server's error ``body`` (``None``: not one of its errors)."""
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return None
    param, problem = _param(error.get("details")) if status == 422 else (None, None)
    if param is not None and problem:
        message = f"{param}: {problem}"
    reshaped = openai_error(
        status, code, message, param=param, retryable=bool(error.get("retryable"))
    )
    return json.dumps(reshaped, ensure_ascii=False, separators=(",", ":")).encode()


class OpenAIErrorShape:
    """Rewrites the error answers of ``OPENAI_PATHS`` (see the module); everything else, and
    every answer that is no error, passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if scope["type"] != "http" or path.rstrip("/") not in OPENAI_PATHS:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []

        async def reshaping_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is whole
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(parts)
            reshaped = _reshape(start["status"], body)
            headers = list(start.get("headers", []))
            if reshaped is not None:
                body = reshaped
                headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshaping_send)
