"""The ``serve`` command, registered with the chat-shell CLI through ``chat_shell.commands``.

Importing this module stays cheap (``chat-shell --help`` must be fast): FastAPI and uvicorn are
imported inside the command.
"""

# No `from __future__ import annotations`: typer reads the command's annotations at run time.
import signal
import sys
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import socket

    import typer
    from chat_shell import Settings
    from fastapi import FastAPI

    from ._settings import ServerSettings

__all__ = ["register", "serve"]


EXIT_OK = 0
EXIT_STARTUP_FAILED = 1  # the app's start-up failed (storage, …): uvicorn logged why
EXIT_USAGE = 2  # bad configuration, or the address cannot be listened on
EXIT_INTERRUPTED = 130  # Ctrl-C


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    api_keys: list[str] | None = None,
    insecure_no_auth: bool = False,
    storage: str | None = None,
    log_level: str | None = None,
    workers: int | None = None,
) -> int:
    """Run the server until SIGTERM (exit 0) or Ctrl-C (130); 2 for bad configuration or an
    address that cannot be listened on, 1 when the storage cannot be opened or the app's
    start-up fails. With ``workers`` > 1, that many processes share the listening socket."""
    from chat_shell import StorageError, UserError, load_settings

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
            workers=workers,
        )
        server.check_bind()
        _check_storage_is_shared(settings, server.workers)
        listener = _listen(server.host, server.port)
    except UserError as exc:
        print(f"chat-shell serve: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        _open_storage_once(settings)
    except UserError as exc:
        listener.close()
        print(f"chat-shell serve: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as exc:
        listener.close()
        print(f"chat-shell serve: {exc.message}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    with listener:
        try:
            from ._app import create_app

            app = create_app(settings, server=server)
        except UserError as exc:
            print(f"chat-shell serve: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        auth = "API keys required" if server.auth_enabled else "no auth (loopback only)"
        if not server.auth_enabled and insecure_no_auth:
            auth = "NO AUTH (--insecure-no-auth)"
        bound = listener.getsockname()[1]
        shown_host = f"[{server.host}]" if ":" in server.host else server.host
        processes = f"; {server.workers} workers" if server.workers > 1 else ""
        print(
            f"chat-shell serve: http://{shown_host}:{bound} ({auth}; "
            f"storage {settings.storage}{processes}); chat page at /, API docs at /docs",
            file=sys.stderr,
            flush=True,
        )
        _warn_if_model_unusable(settings)
        if server.workers > 1:
            return _run_workers(settings, server, listener)
        return _run(app, server, listener)


def _check_storage_is_shared(settings: "Settings", workers: int) -> None:
    """Several workers need one history and one set of runs that they all see: refuse a
    history backend or a run store that lives in one process (memory) before anything
    starts."""
    if workers <= 1:
        return
    from chat_shell import UserError, run_store_from_settings, storage_from_settings

    provider = storage_from_settings(settings)
    if not provider.shared_between_processes:
        alone = f"storage {settings.storage} lives in one process"
    elif run_store_from_settings(settings).name == "memory":
        alone = f"storage {settings.storage} keeps its runs in one process's memory"
    else:
        return
    raise UserError(
        f"--workers {workers} needs history and runs several processes share (storage sqlite"
        f" or postgres); {alone}: choose another with --storage, or run one worker"
    )


def _open_storage_once(settings: "Settings") -> None:
    """Open (and migrate) the storage before serving, so that an unreachable database or a
    damaged file is one line and exit 1, not a start-up traceback; the workers then find the
    schema current."""
    import asyncio

    from chat_shell import storage_from_settings

    async def check() -> None:
        provider = storage_from_settings(settings)
        await provider.initialize()
        await provider.close()

    asyncio.run(check())


def _listen(host: str, port: int) -> "socket.socket":
    """The listening socket, bound here so that a taken port is one clear line before
    anything starts (uvicorn would log it after "Application startup complete")."""
    import socket

    from chat_shell import UserError

    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        listener = socket.create_server((address, port), family=family, backlog=2048)
    except OSError as exc:
        import errno

        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason = "the port is already in use (another server?): choose another with --port"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges): choose another --port"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "that address is not one of this machine's: choose another --host"
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from exc
    return listener


def _warn_if_model_unusable(settings: "Settings") -> None:
    """One line at start-up when the default model cannot be called as configured (no
    credentials, most often): otherwise the first request is the first to find out."""
    from chat_shell import ModelRouter, UserError

    try:
        ModelRouter(settings).resolve(settings.model)
    except UserError as exc:
        print(
            f"chat-shell serve: warning: {exc.message} (until then requests for the model "
            f"{settings.model} fail with 400)",
            file=sys.stderr,
            flush=True,
        )


def _run(app: "FastAPI", server: "ServerSettings", listener: "socket.socket") -> int:
    import uvicorn

    from ._connections import HTTPProtocol
    from ._serving import DrainingServer

    config = uvicorn.Config(
        app,
        host=server.host,
        port=listener.getsockname()[1],
        log_level=server.log_level,
        access_log=server.access_log,
        http=HTTPProtocol,  # head deadline, head size and connection cap (uvicorn has none)
        ws="none",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    running = DrainingServer(config, app.state.chat_shell)
    try:
        running.run(sockets=[listener])
    except SystemExit as exc:  # uvicorn's way of saying the app's start-up failed
        if exc.code in (None, 0):
            return EXIT_OK
        print("chat-shell serve: the server failed to start (the reason is above)", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    return EXIT_INTERRUPTED if running.stopped_by == signal.SIGINT else EXIT_OK


def _run_workers(settings: "Settings", server: "ServerSettings", listener: "socket.socket") -> int:
    """uvicorn's own supervisor: ``server.workers`` processes accept on the one socket, each
    building its app from the settings; a worker that dies is replaced; SIGTERM or Ctrl-C
    stops every worker (each drains as one process does: ``DrainingServer``), then the parent
    exits."""
    import functools

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from ._serving import Supervisor, worker_app

    config = uvicorn.Config(
        functools.partial(worker_app, settings, server),
        factory=True,
        host=server.host,
        port=listener.getsockname()[1],
        workers=server.workers,
        log_level=server.log_level,
        access_log=server.access_log,
        # by name: the configuration is pickled to each worker, and the class is made at run time
        http="chat_shell_http._connections:HTTPProtocol",
        ws="none",
        timeout_graceful_shutdown=5,
        server_header=False,
        # a new worker imports chat-shell before it can answer the supervisor's pings: on a
        # busy machine that takes more than uvicorn's default 5 s
        timeout_worker_healthcheck=30,
    )
    supervisor = Supervisor(config, sockets=[listener])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        print("chat-shell serve: a worker failed to start (the reason is above)", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    return EXIT_INTERRUPTED if supervisor.interrupted else EXIT_OK


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
            str | None,
            typer.Option(help="history backend (sqlite, json, memory, remote, postgres)"),
        ] = None,
        log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                help="server processes on the one port [default: 1]; more than 1 needs history"
                " and runs processes share (storage postgres)",
                min=1,
            ),
        ] = None,
    ) -> None:
        """Serve chat-shell over HTTP: resumable SSE runs, sessions, remote storage."""
        code = serve(
            host=host,
            port=port,
            api_keys=api_key,
            insecure_no_auth=insecure_no_auth,
            storage=storage,
            log_level=log_level,
            workers=workers,
        )
        if code:
            raise typer.Exit(code)
