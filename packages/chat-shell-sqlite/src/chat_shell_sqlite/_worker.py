"""One thread that owns one ``sqlite3`` connection and runs every call on it, in order.

Why a dedicated thread rather than ``asyncio.to_thread``: a ``sqlite3`` connection belongs to
the thread that made it, one connection per storage keeps the statement cache warm, and a single
thread serialises this process's writers without any lock of ours (SQLite's own locks do the same
between processes). The event loop only hands work over and waits for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from chat_shell import StorageError

__all__ = ["Worker"]

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the work itself still finished
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Worker:
    """Runs calls on its own thread, one at a time, in the order they were made."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Daemon: a storage its owner forgot to close must not keep the interpreter alive.
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, fn = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:
                error = exc
            # RuntimeError: the caller's event loop is gone, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, result, error)
            del job, future, fn, result, error

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StorageError("the SQLite storage is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn))
        return await future

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the SQLite storage is closed")
        return self._conn

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread and return its result."""
        return await self._submit(lambda: fn(self._connection()))

    async def open(self, opener: Callable[[], sqlite3.Connection]) -> None:
        """Make the connection on the worker thread (``sqlite3`` ties it to its thread)."""

        def run() -> None:
            self._conn = opener()

        await self._submit(run)

    async def close(self) -> None:
        """Close the connection (after every call queued before) and end the thread."""
        if self._closed:
            return

        def shut() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        try:
            await self._submit(shut)
        finally:
            self._closed = True
            self._jobs.put(None)
