"""Runs in the history's SQLite file: chat-shell's ``RunStore`` for every process on the machine.

The database keeps the rules: one run in progress per session is a unique partial index, every
write is one ``BEGIN IMMEDIATE`` transaction (SQLite serialises them between processes), and
ending a lapsed run is a conditional update inside one, so it happens once however many
processes sweep at the same time.

Two connections, each on its own thread (``Worker``): one writes, one reads, so a follower's read
never waits behind a flush (WAL lets them run side by side). Another process's writes are found
by polling ``PRAGMA data_version`` on the reading connection (every ``poll_seconds``, only while
someone follows a run or watches for cancels): a query that reads no page, and when it changes,
one query for the runs being waited on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from chat_shell import (
    ChatEvent,
    NotFoundError,
    RunInfo,
    RunStore,
    SessionBusyError,
    UserError,
    default_home,
)
from pydantic import TypeAdapter

from ._errors import storage_error
from ._storage import DEFAULT_BUSY_TIMEOUT, Synchronous, open_connection
from ._worker import Worker

__all__ = ["SQLiteRunStore"]

T = TypeVar("T")

_LIVE = "status IN ('queued', 'running')"
_EVENTS = TypeAdapter(list[ChatEvent])
# RunInfo fields kept in columns of their own; the rest is the ``summary`` JSON.
_COLUMN_FIELDS = {
    "run_id",
    "session_id",
    "status",
    "holder",
    "owner",
    "stores_history",
    "created_at",
    "finished_at",
    "lease_expires_at",
    "cancel_requested",
    "last_seq",
    "event_bytes",
    "content",
    "step_content",
}
_RUN_COLUMNS = (
    "run_id, session_id, status, holder, owner, stores_history, created_at, finished_at,"
    " lease_expires_at, cancel_requested, last_seq, event_bytes, summary, content, step_content"
)
_IDS_PER_STATEMENT = 500  # well under SQLite's limit of bound parameters


def _summary(info: RunInfo) -> str:
    return info.model_dump_json(exclude=_COLUMN_FIELDS)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _write(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    return _transaction(conn, "BEGIN IMMEDIATE")


def _snapshot(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    return _transaction(conn, "BEGIN")


def _texts(conn: sqlite3.Connection, run_id: str) -> tuple[str, str]:
    """A live run's ``content`` and ``step_content``, put together from its batches' tails."""
    content: list[str] = []
    step: list[str] = []
    rows = conn.execute(
        "SELECT content_tail, content_reset, step_tail, step_reset FROM run_events"
        " WHERE run_id = ? AND (content_tail IS NOT NULL OR step_tail IS NOT NULL) ORDER BY id",
        (run_id,),
    )
    for content_tail, content_reset, step_tail, step_reset in rows:
        if content_tail is not None:
            if content_reset:
                content.clear()
            content.append(content_tail)
        if step_tail is not None:
            if step_reset:
                step.clear()
            step.append(step_tail)
    return "".join(content), "".join(step)


def _run_info(conn: sqlite3.Connection, row: Sequence[Any]) -> RunInfo:
    (
        run_id,
        session_id,
        status,
        holder,
        owner,
        stores_history,
        created_at,
        finished_at,
        lease_expires_at,
        cancel_requested,
        last_seq,
        event_bytes,
        summary,
        content,
        step_content,
    ) = row
    if status in ("queued", "running"):
        content, step_content = _texts(conn, run_id)
    data = json.loads(summary)
    data.update(
        run_id=run_id,
        session_id=session_id,
        status=status,
        holder=holder,
        owner=owner,
        stores_history=bool(stores_history),
        created_at=created_at,
        finished_at=finished_at,
        lease_expires_at=lease_expires_at,
        cancel_requested=bool(cancel_requested),
        last_seq=last_seq,
        event_bytes=event_bytes,
        content=content,
        step_content=step_content,
    )
    return RunInfo.model_validate(data)


def _select_run(conn: sqlite3.Connection, run_id: str) -> RunInfo:
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?",  # noqa: S608
        (run_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no run {run_id}")
    return _run_info(conn, row)


def _tail(before: str | None, now: str) -> tuple[str | None, int]:
    """What to store of a text that was ``before`` and is ``now``: ``(tail, reset)``."""
    if before is None:
        return now, 1
    if now == before:
        return None, 0
    if now.startswith(before):
        return now[len(before) :], 0
    return now, 1


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        yield ids[start : start + _IDS_PER_STATEMENT]


class _Appender:
    """The writing side's memory of each live run's texts as last stored by this object (so a
    flush stores only what was added). Used on the writer thread only."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[str, str]] = {}

    def fresh(self, run_id: str, last_seq: int, events: Sequence[ChatEvent]) -> list[ChatEvent]:
        fresh = [event for event in events if event.seq > last_seq]
        for offset, event in enumerate(fresh):
            if event.seq != last_seq + 1 + offset:
                raise ValueError(f"run {run_id}: event seq {event.seq} after {last_seq + offset}")
        return fresh

    def append(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        events: Sequence[ChatEvent],
        info: RunInfo | None,
    ) -> None:
        """``append_events`` inside a write transaction."""
        row = conn.execute(
            "SELECT status, last_seq FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no run {run_id}")
        status, last_seq = row
        if status not in ("queued", "running"):
            self.texts.pop(run_id, None)
            return  # ended (its holder lost it): takes nothing more
        fresh = self.fresh(run_id, last_seq, events)
        blob = _EVENTS.dump_json(fresh) if fresh else None
        content_tail = step_tail = None
        content_reset = step_reset = 0
        if info is not None:
            before = self.texts.get(run_id)
            content_tail, content_reset = _tail(before and before[0], info.content)
            step_tail, step_reset = _tail(before and before[1], info.step_content)
            self.texts[run_id] = (info.content, info.step_content)
        if blob is not None or content_tail is not None or step_tail is not None:
            conn.execute(
                "INSERT INTO run_events (run_id, first_seq, last_seq, events, content_tail,"
                " content_reset, step_tail, step_reset) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    last_seq + 1,
                    last_seq + len(fresh),
                    blob,
                    content_tail,
                    content_reset,
                    step_tail,
                    step_reset,
                ),
            )
        added = len(blob) if blob is not None else 0
        if info is None:
            if fresh:
                conn.execute(
                    "UPDATE runs SET last_seq = ?, event_bytes = event_bytes + ? WHERE run_id = ?",
                    (last_seq + len(fresh), added, run_id),
                )
            return
        new_status = info.status if info.status in ("queued", "running") else status
        conn.execute(
            "UPDATE runs SET last_seq = ?, event_bytes = event_bytes + ?, status = ?, summary = ?"
            " WHERE run_id = ?",
            (last_seq + len(fresh), added, new_status, _summary(info), run_id),
        )

    def finish(
        self, conn: sqlite3.Connection, run_id: str, events: Sequence[ChatEvent], info: RunInfo
    ) -> bool:
        row = conn.execute(
            "SELECT status, last_seq FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no run {run_id}")
        status, last_seq = row
        self.texts.pop(run_id, None)
        if status not in ("queued", "running"):
            return False
        fresh = self.fresh(run_id, last_seq, events)
        added = 0
        if fresh:
            blob = _EVENTS.dump_json(fresh)
            added = len(blob)
            conn.execute(
                "INSERT INTO run_events (run_id, first_seq, last_seq, events) VALUES (?, ?, ?, ?)",
                (run_id, last_seq + 1, last_seq + len(fresh), blob),
            )
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, lease_expires_at = NULL, last_seq = ?,"
            " event_bytes = event_bytes + ?, summary = ?, content = ?, step_content = ?"
            " WHERE run_id = ?",
            (
                info.status,
                info.finished_at if info.finished_at is not None else time.time(),
                last_seq + len(fresh),
                added,
                _summary(info),
                info.content,
                info.step_content,
                run_id,
            ),
        )
        return True


class _Waiter:
    __slots__ = ("after", "future")

    def __init__(self, after: int, future: asyncio.Future[None]) -> None:
        self.after = after
        self.future = future


class SQLiteRunStore(RunStore):
    """Runs and their events in a SQLite file, by default the history's
    (``<chat-shell home>/history.db``): the CLI, the library and every server that open the
    file share one claim per session, and a run outlives the process that ran it.

    ``synchronous`` and ``busy_timeout`` are those of ``SQLiteStorage``. ``poll_seconds`` is how
    often a follower or a cancel watcher looks for another process's writes (default 20 ms).
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Synchronous = "normal",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        poll_seconds: float = 0.02,
    ) -> None:
        if synchronous not in ("normal", "full", "extra"):
            raise UserError(f"synchronous must be one of normal, full, extra (got {synchronous!r})")
        if busy_timeout < 0:
            raise UserError(f"busy_timeout must be 0 or more seconds (got {busy_timeout})")
        if not 0 < poll_seconds <= 1:
            raise UserError(f"poll_seconds must be more than 0 and at most 1 (got {poll_seconds})")
        self.path = Path(path) if path is not None else default_home() / "history.db"
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = float(busy_timeout)
        self.poll_seconds = float(poll_seconds)
        self._writer: Worker | None = None
        self._reader: Worker | None = None
        self._resolved = self.path
        self._appender = _Appender()
        self._closed = False
        # Following and watching: who waits for what, and the poller that wakes them.
        self._waiters: dict[str, list[_Waiter]] = {}
        self._watchers: dict[str, list[tuple[asyncio.Queue[str | None], set[str]]]] = {}
        self._generation = 0
        self._version: int | None = None
        self._kick: asyncio.Event | None = None
        self._force_check = False
        self._poller: asyncio.Task[None] | None = None

    # -- opening and closing ---------------------------------------------------------------

    async def initialize(self) -> None:
        if self._writer is not None:
            return
        self._closed = False
        path = self._resolved = self.path.expanduser().absolute()
        workers = []
        try:
            for role in ("writer", "reader"):
                worker = Worker(name=f"chat-shell-sqlite runs {role} {path.name}")
                workers.append(worker)
                await worker.open(
                    lambda: open_connection(path, self.synchronous, self.busy_timeout)
                )
        except BaseException:
            for worker in workers:
                await worker.close()
            raise
        self._writer, self._reader = workers

    async def close(self) -> None:
        self._closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_result(None)
        self._waiters = {}
        for watchers in self._watchers.values():
            for queue, _ in watchers:
                queue.put_nowait(None)
        self._watchers = {}
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        for worker in (writer, reader):
            if worker is not None:
                await worker.close()

    async def _call(self, worker: Worker | None, fn: Callable[[sqlite3.Connection], T]) -> T:
        if worker is None:
            raise UserError(
                "SQLiteRunStore is not initialized (or is closed): call `await store.initialize()`"
            )
        path, busy_timeout = self._resolved, self.busy_timeout

        def guarded(conn: sqlite3.Connection) -> T:
            try:
                return fn(conn)
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                raise storage_error(path, exc, busy_timeout) from exc

        return await worker.call(guarded)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._call(self._writer, fn)
        finally:
            if self._waiters and self._kick is not None:
                self._kick.set()  # this process's followers need not wait for the next poll

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(self._reader, fn)

    # -- a run's life ------------------------------------------------------------------------

    async def create_run(self, info: RunInfo, *, lease_seconds: float) -> RunInfo:
        if info.done:
            raise ValueError("a new run must be queued or running")
        appender = self._appender

        def write(conn: sqlite3.Connection) -> RunInfo:
            with _write(conn):
                if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (info.run_id,)).fetchone():
                    raise ValueError(f"run {info.run_id} exists")
                holding = conn.execute(
                    f"SELECT run_id FROM runs WHERE session_id = ? AND {_LIVE}",  # noqa: S608
                    (info.session_id,),
                ).fetchone()
                if holding is not None:
                    raise SessionBusyError(info.session_id, holding[0])
                stored = info.model_copy(
                    deep=True,
                    update={
                        "lease_expires_at": time.time() + lease_seconds,
                        "last_seq": -1,
                        "event_bytes": 0,
                        "finished_at": None,
                    },
                )
                conn.execute(
                    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES"  # noqa: S608
                    " (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, -1, 0, ?, '', '')",
                    (
                        stored.run_id,
                        stored.session_id,
                        stored.status,
                        stored.holder,
                        stored.owner,
                        int(stored.stores_history),
                        stored.created_at,
                        stored.lease_expires_at,
                        int(stored.cancel_requested),
                        _summary(stored),
                    ),
                )
                appender.texts[stored.run_id] = ("", "")
                if stored.content or stored.step_content:
                    appender.append(conn, stored.run_id, [], stored)
                return stored

        return await self._write(write)

    async def append_events(
        self, run_id: str, events: Sequence[ChatEvent], info: RunInfo | None = None
    ) -> None:
        await self.append_batches([(run_id, events, info)])

    async def append_batches(
        self, batches: Sequence[tuple[str, Sequence[ChatEvent], RunInfo | None]]
    ) -> None:
        if not batches:
            return
        appender = self._appender

        def write(conn: sqlite3.Connection) -> None:
            with _write(conn):
                for run_id, events, info in batches:
                    appender.append(conn, run_id, events, info)

        await self._write(write)

    async def finish_run(self, run_id: str, events: Sequence[ChatEvent], info: RunInfo) -> bool:
        if not info.done:
            raise ValueError("finish_run needs a final status")
        appender = self._appender

        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                return appender.finish(conn, run_id, events, info)

        return await self._write(write)

    async def renew_leases(
        self, holder: str, run_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return set()

        def write(conn: sqlite3.Connection) -> set[str]:
            until = time.time() + lease_seconds
            renewed: set[str] = set()
            with _write(conn):
                for chunk in _chunks(ids):
                    marks = ", ".join("?" * len(chunk))
                    rows = conn.execute(
                        "UPDATE runs SET lease_expires_at = ?"  # noqa: S608
                        f" WHERE holder = ? AND {_LIVE} AND run_id IN ({marks}) RETURNING run_id",
                        (until, holder, *chunk),
                    ).fetchall()
                    renewed.update(row[0] for row in rows)
            return renewed

        return await self._write(write)

    async def interrupt_expired(self, *, now: float | None = None) -> list[RunInfo]:
        moment = time.time() if now is None else now
        lapsed_query = f"SELECT {_RUN_COLUMNS} FROM runs WHERE {_LIVE} AND lease_expires_at < ?"  # noqa: S608

        def any_lapsed(conn: sqlite3.Connection) -> bool:
            return conn.execute(lapsed_query + " LIMIT 1", (moment,)).fetchone() is not None

        # Most sweeps find nothing: look without taking the write lock first.
        if not await self._read(any_lapsed):
            return []

        def write(conn: sqlite3.Connection) -> list[RunInfo]:
            ended: list[RunInfo] = []
            with _write(conn):
                # Under the write lock: a run another process ended meanwhile is no longer here.
                for row in conn.execute(lapsed_query, (moment,)).fetchall():
                    info, event = RunStore.interrupted(_run_info(conn, row), moment)
                    blob = _EVENTS.dump_json([event])
                    conn.execute(
                        "INSERT INTO run_events (run_id, first_seq, last_seq, events)"
                        " VALUES (?, ?, ?, ?)",
                        (info.run_id, event.seq, event.seq, blob),
                    )
                    changed = conn.execute(
                        "UPDATE runs SET status = 'interrupted', finished_at = ?,"
                        " lease_expires_at = NULL, last_seq = ?, event_bytes = event_bytes + ?,"
                        " summary = ?, content = ?, step_content = ?"
                        " WHERE run_id = ? AND status IN ('queued', 'running')",
                        (
                            moment,
                            event.seq,
                            len(blob),
                            _summary(info),
                            info.content,
                            info.step_content,
                            info.run_id,
                        ),
                    ).rowcount
                    if changed:
                        bytes_now = info.event_bytes + len(blob)
                        ended.append(info.model_copy(update={"event_bytes": bytes_now}))
            return ended

        return await self._write(write)

    # -- reading -----------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunInfo:
        def read(conn: sqlite3.Connection) -> RunInfo:
            with _snapshot(conn):
                return _select_run(conn, run_id)

        return await self._read(read)

    @staticmethod
    def _events_after(
        conn: sqlite3.Connection, run_id: str, after: int, limit: int | None
    ) -> list[ChatEvent]:
        found: list[ChatEvent] = []
        rows = conn.execute(
            "SELECT events FROM run_events WHERE run_id = ? AND last_seq > ?"
            " AND events IS NOT NULL ORDER BY id",
            (run_id, after),
        )
        for (blob,) in rows:
            batch = _EVENTS.validate_json(blob)
            found.extend(event for event in batch if event.seq > after)
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    async def read_events(
        self, run_id: str, *, after: int = -1, limit: int | None = None
    ) -> list[ChatEvent]:
        if limit is not None and limit <= 0:
            await self.get_run(run_id)
            return []

        def read(conn: sqlite3.Connection) -> list[ChatEvent]:
            with _snapshot(conn):
                if (
                    conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    is None
                ):
                    raise NotFoundError(f"no run {run_id}")
                return self._events_after(conn, run_id, after, limit)

        return await self._read(read)

    def _read_follow(
        self, run_id: str, after: int
    ) -> Callable[[sqlite3.Connection], tuple[list[ChatEvent], str | None]]:
        def read(conn: sqlite3.Connection) -> tuple[list[ChatEvent], str | None]:
            with _snapshot(conn):
                row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is None:
                    return [], None
                return self._events_after(conn, run_id, after, None), row[0]

        return read

    async def follow(self, run_id: str, *, after: int = -1) -> AsyncIterator[ChatEvent]:
        seen = after
        first = True
        while not self._closed:
            generation = self._generation
            events, status = await self._read(self._read_follow(run_id, seen))
            if status is None:
                if first:
                    raise NotFoundError(f"no run {run_id}")
                return  # purged while followed
            first = False
            for event in events:
                yield event
                seen = event.seq
            if status not in ("queued", "running"):
                return
            if generation == self._generation:
                await self._wait(run_id, seen)

    async def session_run(self, session_id: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                f"SELECT run_id FROM runs WHERE session_id = ? AND {_LIVE}",  # noqa: S608
                (session_id,),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read(read)

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"no run {run_id}")
                if row[0] not in ("queued", "running"):
                    return False
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,))
                return True

        asked = await self._write(write)
        if asked and self._watchers:
            self._force_check = True
            self._wake_poller()
        return asked

    # -- approvals --------------------------------------------------------------------------

    async def answer_approval(self, run_id: str, call_id: str, approved: bool) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"no run {run_id}")
                if row[0] not in ("queued", "running"):
                    return False
                stored = conn.execute(
                    "INSERT OR IGNORE INTO run_approvals (run_id, call_id, approved, answered_at)"
                    " VALUES (?, ?, ?, ?)",
                    (run_id, call_id, int(approved), time.time()),
                )
                return stored.rowcount == 1

        return await self._write(write)

    async def approval_answer(self, run_id: str, call_id: str) -> bool | None:
        def read(conn: sqlite3.Connection) -> bool | None:
            row = conn.execute(
                "SELECT approved FROM run_approvals WHERE run_id = ? AND call_id = ?",
                (run_id, call_id),
            ).fetchone()
            return None if row is None else bool(row[0])

        return await self._read(read)

    async def watch_cancels(self, holder: str) -> AsyncIterator[str]:
        if self._closed:
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        entry = (queue, set[str]())
        watchers = self._watchers.setdefault(holder, [])
        watchers.append(entry)
        self._force_check = True  # requests made before this call count too
        self._ensure_poller()
        self._wake_poller()
        try:
            while (run_id := await queue.get()) is not None:
                yield run_id
        finally:
            if entry in watchers:
                watchers.remove(entry)
            if not watchers and self._watchers.get(holder) is watchers:
                del self._watchers[holder]

    # -- retention ---------------------------------------------------------------------------

    async def purge(
        self,
        *,
        max_age_seconds: float | None = None,
        max_count: int | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> int:
        moment = time.time() if now is None else now
        horizon = None if max_age_seconds is None else moment - max_age_seconds

        def write(conn: sqlite3.Connection) -> int:
            with _write(conn):
                finished = conn.execute(
                    "SELECT run_id, finished_at, event_bytes FROM runs"  # noqa: S608
                    f" WHERE NOT ({_LIVE}) ORDER BY coalesce(finished_at, 0), rowid"
                ).fetchall()
                total = sum(row[2] for row in finished)
                doomed: list[str] = []
                for position, (run_id, finished_at, event_bytes) in enumerate(finished):
                    left = len(finished) - position
                    too_old = horizon is not None and (finished_at or 0.0) < horizon
                    too_many = max_count is not None and left > max_count
                    too_big = max_bytes is not None and total > max_bytes
                    if not (too_old or too_many or too_big):
                        break
                    doomed.append(run_id)
                    total -= event_bytes
                for chunk in _chunks(doomed):
                    marks = ", ".join("?" * len(chunk))
                    # ON DELETE CASCADE takes their events
                    conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", chunk)  # noqa: S608
                return len(doomed)

        return await self._write(write)

    # -- noticing other processes' writes ----------------------------------------------------

    async def _wait(self, run_id: str, after: int) -> None:
        """Until the run has an event after ``after``, has ended, is gone, or the store closed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(after, future)
        waiters = self._waiters.setdefault(run_id, [])
        waiters.append(waiter)
        self._ensure_poller()
        try:
            await future
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._waiters.get(run_id) is waiters:
                del self._waiters[run_id]

    def _ensure_poller(self) -> None:
        if self._kick is None:
            self._kick = asyncio.Event()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        else:
            self._kick.set()  # a sleeping poller has someone to poll for again

    def _wake_poller(self) -> None:
        if self._kick is not None:
            self._kick.set()

    async def _poll(self) -> None:
        kick = self._kick
        assert kick is not None
        while not self._closed:
            if not self._waiters and not self._watchers:
                kick.clear()
                await kick.wait()  # nobody to poll for: sleep until someone comes
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), self.poll_seconds)
            kick.clear()
            try:
                await self._check()
            except Exception:  # a failed poll is retried at the next one
                await asyncio.sleep(self.poll_seconds)

    async def _check(self) -> None:
        version = await self._read(lambda conn: conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version and not self._force_check:
            return
        self._version = version
        self._force_check = False
        self._generation += 1
        waited = {run_id: min(w.after for w in ws) for run_id, ws in self._waiters.items() if ws}
        holders = list(self._watchers)

        def read(
            conn: sqlite3.Connection,
        ) -> tuple[dict[str, tuple[int, str]], list[tuple[str, str]]]:
            states: dict[str, tuple[int, str]] = {}
            for chunk in _chunks(list(waited)):
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT run_id, last_seq, status FROM runs WHERE run_id IN ({marks})",  # noqa: S608
                    chunk,
                )
                states.update((run_id, (last_seq, status)) for run_id, last_seq, status in rows)
            cancels: list[tuple[str, str]] = []
            for chunk in _chunks(holders):
                marks = ", ".join("?" * len(chunk))
                cancels += conn.execute(
                    "SELECT holder, run_id FROM runs WHERE cancel_requested = 1"  # noqa: S608
                    f" AND {_LIVE} AND holder IN ({marks})",
                    chunk,
                ).fetchall()
            return states, cancels

        if not waited and not holders:
            return
        states, cancels = await self._read(read)
        for run_id, waiters in self._waiters.items():
            state = states.get(run_id)
            for waiter in waiters:
                moved = (
                    state is None
                    or state[0] > waiter.after
                    or state[1] not in ("queued", "running")
                )
                if moved and run_id in waited and not waiter.future.done():
                    waiter.future.set_result(None)
        asked: dict[str, set[str]] = {}
        for holder, run_id in cancels:
            asked.setdefault(holder, set()).add(run_id)
        for holder, watchers in self._watchers.items():
            current = asked.get(holder, set())
            for queue, delivered in watchers:
                for run_id in sorted(current - delivered):
                    queue.put_nowait(run_id)
                delivered.clear()
                delivered.update(current)
