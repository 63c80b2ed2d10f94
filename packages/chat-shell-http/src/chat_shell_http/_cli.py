"""The ``serve`` command, registered with the chat-shell CLI through ``chat_shell.commands``.

Importing this module stays cheap (``chat-shell --help`` must be fast): FastAPI and uvicorn are
imported inside the command.
"""

# No `from __future__ import annotations`: typer reads the command's annotations at run time.
import sys
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

__all__ = ["register", "serve"]


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    api_keys: list[str] | None = None,
    insecure_no_auth: bool = False,
    storage: str | None = None,
    log_level: str | None = None,
) -> int:
    """Run the server until interrupted; the exit code (2 for bad configuration)."""
    from chat_shell import UserError, load_settings

    try:
        settings = load_settings(storage=storage)
        from ._settings import ServerSettings

        server = ServerSettings.from_settings(
            settings,
            host=host,
            port=port,
            api_keys=api_keys or None,
            insecure_no_auth=insecure_no_auth or None,
            log_level=log_level,
        )
        server.check_bind()
        problem = _cannot_listen(server.host, server.port)
        if problem:
            raise UserError(f"cannot listen on {server.url}: {problem}")
        import uvicorn

        from ._app import create_app
        from ._connections import HTTPProtocol

        app = create_app(settings, server=server)
    except UserError as exc:
        print(f"chat-shell serve: {exc.message}", file=sys.stderr)
        return 2
    auth = "API keys required" if server.auth_enabled else "no auth (loopback only)"
    if not server.auth_enabled and insecure_no_auth:
        auth = "NO AUTH (--insecure-no-auth)"
    print(
        f"chat-shell serve: {server.url} ({auth}; storage {settings.storage}); "
        "chat page at /, API docs at /docs",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        access_log=server.access_log,
        http=HTTPProtocol,  # head deadline, head size and connection cap (uvicorn has none)
        ws="none",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    return 0


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (no such address here, port taken),
    found before uvicorn starts, which would say it in several log lines and exit 3."""
    import socket

    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def register(app: "typer.Typer") -> None:
    """Add ``serve`` to the chat-shell CLI."""
    import typer

    @app.command("serve")
    def serve_command(
        host: Annotated[
            str | None, typer.Option(help="address to bind [default: 127.0.0.1]")
        ] = None,
        port: Annotated[int | None, typer.Option(help="port to bind [default: 8000]")] = None,
        api_key: Annotated[
            list[str] | None,
            typer.Option(
                "--api-key",
                help="accept this API key (repeatable; also [server] api_keys, "
                "CHAT_SHELL_API_KEYS)",
            ),
        ] = None,
        insecure_no_auth: Annotated[
            bool,
            typer.Option(
                "--insecure-no-auth",
                help="allow a non-loopback address without API keys",
            ),
        ] = False,
        storage: Annotated[
            str | None, typer.Option(help="history backend (sqlite, json, memory, remote)")
        ] = None,
        log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
    ) -> None:
        """Serve chat-shell over HTTP: resumable SSE runs, sessions, remote storage."""
        code = serve(
            host=host,
            port=port,
            api_keys=api_key,
            insecure_no_auth=insecure_no_auth,
            storage=storage,
            log_level=log_level,
        )
        if code:
            raise typer.Exit(code)
