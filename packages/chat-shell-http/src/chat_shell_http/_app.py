"""``create_app(settings)``: the FastAPI application of ``chat-shell serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from chat_shell import Settings, StorageProvider, load_settings
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.responses import Response

from . import (
    _routes_health,
    _routes_openai,
    _routes_page,
    _routes_runs,
    _routes_sessions,
    _routes_storage,
)
from ._connections import LIMITS_KEY, ConnectionLimits
from ._errors import error_json, install_error_handlers
from ._guards import AccessGuard
from ._limits import RequestLimits
from ._logs import install_log_redaction
from ._openai_errors import OpenAIErrorShape
from ._settings import ServerSettings
from ._state import ServerState

__all__ = ["create_app"]


class _CORS(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the one error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {
            k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
        }
        body = error_json(
            "cors_not_allowed",
            f"not allowed by the server's cors_origins: {refused}",
        )
        return Response(body, 400, headers=headers, media_type="application/json")


def create_app(
    settings: Settings | None = None,
    *,
    server: ServerSettings | None = None,
    storage: StorageProvider | None = None,
) -> FastAPI:
    """The server for ``settings`` (default: ``load_settings()``).

    ``server`` defaults to ``ServerSettings.from_settings(settings)`` (the ``[server]`` table);
    ``storage`` to the backend the settings name. Storage and model clients are opened by the
    app's lifespan and closed with it; runs still going at shutdown are cancelled (their partial
    answers stored). The lifespan also hands the connection limits to ``HTTPProtocol``.
    """
    settings = settings or load_settings()
    server = server or ServerSettings.from_settings(settings)
    state = ServerState(settings, server, storage)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        install_log_redaction()  # here: uvicorn configures its loggers before the lifespan
        await state.open()
        try:
            yield {LIMITS_KEY: ConnectionLimits.from_settings(server)}
        finally:
            await state.close()

    from . import __version__

    # FastAPI's own /docs and /redoc pages load their scripts from a CDN and are blank offline;
    # FastAPIOffline serves the same pages with the files it ships (under /static-offline-docs).
    app = FastAPIOffline(
        title="chat-shell",
        version=__version__,
        description="An LLM agent that chats and acts through tools: resumable, cancellable "
        "SSE runs, sessions, and the remote-storage protocol. See docs/http.md.",
        lifespan=lifespan,
        # no call to the public validator from the docs page
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.chat_shell = state
    install_error_handlers(app)
    for module in (
        _routes_runs,
        _routes_sessions,
        _routes_storage,
        _routes_health,
        _routes_openai,
        _routes_page,
    ):
        app.include_router(module.router)
    if server.cors_origins:
        app.add_middleware(
            _CORS,
            allow_origins=server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Session-Id"],
            expose_headers=["X-Run-Id", "X-Subtask-Id", "X-Session-Id", "Retry-After"],
        )
    app.add_middleware(
        RequestLimits, max_bytes=server.max_request_bytes, max_head_bytes=server.max_head_bytes
    )
    app.add_middleware(AccessGuard, server=server)  # refused requests touch nothing
    app.add_middleware(OpenAIErrorShape)  # reshapes only the error bodies of the OpenAI routes
    return app
