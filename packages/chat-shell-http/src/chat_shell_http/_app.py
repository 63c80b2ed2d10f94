"""``create_app(settings)``: the FastAPI application of ``chat-shell serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chat_shell import Settings, StorageProvider, load_settings
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from . import _routes_health, _routes_runs, _routes_sessions, _routes_storage
from ._errors import install_error_handlers
from ._limits import BodySizeLimit
from ._settings import ServerSettings
from ._state import ServerState

__all__ = ["create_app"]


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
    answers stored).
    """
    settings = settings or load_settings()
    server = server or ServerSettings.from_settings(settings)
    state = ServerState(settings, server, storage)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.open()
        try:
            yield
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
    for module in (_routes_runs, _routes_sessions, _routes_storage, _routes_health):
        app.include_router(module.router)
    if server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["X-Subtask-Id", "X-Session-Id", "Retry-After"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=server.max_request_bytes)
    return app
