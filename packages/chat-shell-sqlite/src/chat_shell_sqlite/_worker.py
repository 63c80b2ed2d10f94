"""One thread that owns one ``sqlite3`` connection and runs every call on it, in order.

Why a dedicated thread rather than ``asyncio.to_thread``: a ``sqlite3`` connection belongs to
the thread that made it, one connection per storage keeps the statement cache warm, and a single
thread serialises this process's writers without any lock of ours (SQLite's own locks do the same
between processes). The event loop only hands work over and waits for the answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from chat_shell import StorageError

__all__ = ["Worker"]

T = TypeVar("T")

_Done = tuple["asyncio.Future[Any]", Any, "BaseException | None"]


class _Inbox:
    """Answers waiting for one event loop, handed over with one wake-up for however many.

    The worker appends an answer, then wakes the loop only if no wake-up is already on its way;
    the loop clears that flag *before* taking the answers, so an answer appended while it drains
    is either taken by this drain or gets a wake-up of its own. Nothing waits for a batch to fill:
    each answer is handed over the moment it exists, and a burst of them costs one wake-up.
    """

    __slots__ = ("answers", "loop", "waking")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.answers: collections.deque[_Done] = collections.deque()
        self.waking = False

    def post(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """On the worker thread."""
        self.answers.append((future, result, error))
        if not self.waking:
            self.waking = True
            # RuntimeError: the caller's event loop is gone, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        """On the event loop."""
        self.waking = False
        answers = self.answers
        while answers:
            future, result, error = answers.popleft()
            if future.done():  # the caller was cancelled; the work itself still finished
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


_Job = tuple[_Inbox, "asyncio.Future[Any]", Callable[[], Any]]


class Worker:
    """Runs calls on its own thread, one at a time, in the order they were made."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._inbox: _Inbox | None = None  # the last caller's loop (a job keeps its own)
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Daemon: a storage its owner forgot to close must not keep the interpreter alive.
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        get = self._jobs.get
        while True:
            job = get()
            if job is None:
                return
            inbox, future, fn = job
            try:
                inbox.post(future, fn(), None)
            except BaseException as exc:
                inbox.post(future, None, exc)
            del job, inbox, future, fn

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StorageError("the SQLite storage is closed")
        loop = asyncio.get_running_loop()
        inbox = self._inbox
        if inbox is None or inbox.loop is not loop:
            inbox = self._inbox = _Inbox(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((inbox, future, fn))
        return await future

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the SQLite storage is closed")
        return self._conn

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread and return its result."""
        return await self._submit(lambda: fn(self._connection()))

    async def open(self, opener: Callable[[], tuple[sqlite3.Connection, T]]) -> T:
        """Make the connection on the worker thread (``sqlite3`` ties it to its thread);
        returns what ``opener`` returns with it."""

        def run() -> T:
            self._conn, said = opener()
            return said

        return await self._submit(run)

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
