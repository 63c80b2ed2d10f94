"""The one error body of the server and the one place chat-shell errors become status codes.

Every error answer is ``{"error": {"code", "message", "retryable"}}`` (plus ``"details"`` for
validation errors). Bodies never carry tracebacks, keys or a provider's error text: a model
failure is told by its class (``MODEL_ERROR_CODES``: ``authentication``, ``rate_limited`` …), the
model, the provider's HTTP status and ``retry_after``; the provider's text goes to the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chat_shell import (
    MODEL_ERROR_CODES,
    ChatShellError,
    ModelError,
    NotFoundError,
    SessionBusyError,
    StorageError,
    ToolError,
    UserError,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Send

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorInfo",
    "error_json",
    "error_response",
    "install_error_handlers",
    "public_error",
    "send_error",
]

logger = logging.getLogger("chat_shell_http")


class ErrorInfo(BaseModel):
    code: str = Field(description="stable, machine-readable error code")
    message: str = Field(description="what went wrong and how to fix it")
    retryable: bool = Field(description="whether the same request may succeed later")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="validation problems: location, message, type"
    )


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


class ApiError(Exception):
    """An error answer the routes raise: status, code, message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.headers = headers


def error_json(code: str, message: str, *, retryable: bool = False) -> bytes:
    """The error body as bytes, for answers sent below FastAPI (middleware, the HTTP protocol)."""
    error = {"code": code, "message": message, "retryable": retryable}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    retryable: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer an error from ASGI middleware, before the application sees the request."""
    body = error_json(code, message, retryable=retryable)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retryable: bool = False,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "retryable": retryable}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


# The one mapping from the core error tree to HTTP (most specific class first).
_STATUS: list[tuple[type[ChatShellError], int, str, bool]] = [
    (NotFoundError, 404, "not_found", False),
    (SessionBusyError, 409, "session_busy", True),
    (StorageError, 503, "storage_unavailable", True),
    (UserError, 400, "bad_request", False),
    (ModelError, 502, "model_error", True),
    (ToolError, 500, "tool_error", False),
    (ChatShellError, 500, "internal_error", False),
]

_PUBLIC_MESSAGES = {
    "storage_error": "the history storage failed",
    "storage_unavailable": "the history storage is unavailable",
}


def model_error_message(error: dict[str, Any]) -> str:
    """What a client is told of a model failure: its class in words, the model, the provider's
    HTTP status and the wait it asked for; never the provider's own text."""
    code = str(error.get("code", "model_error"))
    message = MODEL_ERROR_CODES.get(code, MODEL_ERROR_CODES["model_error"])
    if error.get("model"):
        message = f"{error['model']}: {message}"
    if isinstance(error.get("provider_status"), int):
        message += f" (HTTP {error['provider_status']})"
    retry_after = error.get("retry_after")
    if isinstance(retry_after, int | float):
        message += f"; retry after {retry_after:g} s"
    elif error.get("retryable"):
        message += " (retryable)"
    return message


def public_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's error as clients may see it: a provider's or storage's own text is replaced
    (a model failure keeps its code, ``retryable`` and the fields chat-shell set)."""
    if not error:
        return error
    code = str(error.get("code", "error"))
    if code in MODEL_ERROR_CODES:
        return {**error, "message": model_error_message(error)}
    if code in _PUBLIC_MESSAGES:
        message = _PUBLIC_MESSAGES[code]
        if error.get("retryable"):
            message += " (retryable)"
        return {**error, "message": message}
    return error


def _from_chat_shell(exc: ChatShellError) -> JSONResponse:
    status, code, retryable = next((s, c, r) for cls, s, c, r in _STATUS if isinstance(exc, cls))
    if isinstance(exc, ModelError):
        logger.warning("model failed: %s (%s): %s", exc.model, exc.code, exc.message)
        error = {"code": exc.code, "retryable": exc.retryable, "model": exc.model}
        error.update(provider_status=exc.status_code, retry_after=exc.retry_after)
        return error_response(status, exc.code, model_error_message(error), retryable=exc.retryable)
    if status >= 500 and not isinstance(exc, (StorageError, ModelError)):
        logger.error("request failed: %s: %s", type(exc).__name__, exc.message)
    message = exc.message if status < 500 else _PUBLIC_MESSAGES.get(code, "internal error")
    if isinstance(exc, SessionBusyError):
        return error_response(
            status, code, exc.message, retryable=True, headers={"Retry-After": "1"}
        )
    if isinstance(exc, NotFoundError):
        message = exc.message
    elif isinstance(exc, StorageError):
        logger.warning("storage failed: %s", exc.message)
        message = _PUBLIC_MESSAGES["storage_unavailable"]
    return error_response(status, code, message, retryable=retryable)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        # The offending input is left out: it may be huge, or a secret sent by mistake.
        details.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return details


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _methods_of(request: Request) -> list[str]:
    """Every method some route of the app accepts on this request's path (asked of the routes
    themselves: FastAPI nests included routers)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Route every error (ours, FastAPI's, Starlette's, unexpected ones) to the one body."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status, exc.code, exc.message, retryable=exc.retryable, headers=exc.headers
        )

    async def on_chat_shell_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ChatShellError)
        return _from_chat_shell(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(
                400, "invalid_json", "the request body is not valid JSON", details=details
            )
        return error_response(
            422, "invalid_request", "the request does not match the schema", details=details
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        headers = getattr(exc, "headers", None)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 400:  # FastAPI's own: a body it could not decode (not UTF-8 JSON)
            message = "the request body is not valid JSON (UTF-8)"
        elif status == 405:  # Starlette names the methods of one route; the path may have more
            headers = {**(headers or {}), "Allow": ", ".join(_methods_of(request))}
        code = {
            400: "invalid_json",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }.get(status, "http_error")
        return error_response(status, code, message, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(ChatShellError, on_chat_shell_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
