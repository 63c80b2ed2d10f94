"""How ``chat-shell serve`` runs uvicorn: one process, or a supervisor and N worker processes.

Imported only by the ``serve`` command (it imports uvicorn). Every process that serves — the
one process, or each worker — uses ``DrainingServer``, so a stop signal drains the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import multiprocess

if TYPE_CHECKING:
    from chat_shell import Settings
    from fastapi import FastAPI

    from ._settings import ServerSettings
    from ._state import ServerState

__all__ = ["DrainingServer", "Supervisor", "WorkerProcess", "worker_app"]

# the app this worker process built (``worker_app``): what its server drains on a stop signal
_worker_state: ServerState | None = None


class DrainingServer(uvicorn.Server):
    """uvicorn's server, but a stop signal ends it like a normal end: uvicorn re-raises
    the signal after its graceful shutdown, which makes SIGTERM exit 143.

    The first SIGTERM or SIGINT drains first: new runs are refused (503
    ``shutting_down``, Retry-After) while the listener stays open, runs in progress get
    ``shutdown_grace_seconds`` to finish, then the rest are cancelled (partial answers
    stored, every watcher gets its ``complete``); only then does uvicorn stop. A second
    signal stops at once (uvicorn's own forced exit).
    """

    stopped_by: int | None = None
    draining: asyncio.Task[None] | None = None

    def __init__(self, config: uvicorn.Config, state: ServerState | None = None) -> None:
        super().__init__(config)
        self._state = state

    def drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self._state or _worker_state

        async def drain() -> None:
            try:
                if state is not None:
                    await state.runs.shutdown(state.server.shutdown_grace_seconds)
            finally:
                self.handle_exit(sig, frame)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.handle_exit(sig, frame)
            return
        self.draining = loop.create_task(drain())

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(sig: int, frame: FrameType | None) -> None:
            first = self.stopped_by is None
            self.stopped_by = self.stopped_by or sig
            if first and self.started:
                self.drain_then_exit(sig, frame)
            else:
                self.handle_exit(sig, frame)

        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, stop) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def worker_app(settings: Settings, server: ServerSettings) -> FastAPI:
    """The app of one worker process: built there, from the parent's settings."""
    global _worker_state
    from ._app import create_app

    app = create_app(settings, server=server)
    _worker_state = app.state.chat_shell
    return app


class WorkerProcess(multiprocess.Process):
    """uvicorn's worker process, serving with ``DrainingServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class Supervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor (replaces dead workers; SIGTERM/SIGINT: SIGTERM to each worker,
    then wait), starting ``WorkerProcess``es and remembering whether Ctrl-C stopped it."""

    interrupted = False

    def __init__(self, config: uvicorn.Config, sockets: list[Any]) -> None:
        super().__init__(config, sockets)
        # uvicorn makes its workers from this module-level name in the methods that start,
        # replace, restart and add them; this supervisor is the only one in its process
        multiprocess.Process = WorkerProcess  # type: ignore[misc]

    def handle_int(self) -> None:
        self.interrupted = True
        super().handle_int()
