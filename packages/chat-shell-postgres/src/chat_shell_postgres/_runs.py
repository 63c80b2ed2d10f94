"""Runs in PostgreSQL: one run per session for every process on every machine, events in
batches, followers and cancels woken through LISTEN/NOTIFY.

Each store object keeps one listening connection (``LISTEN chat_shell_runs``). A write that
followers or a holder must see (events, the end of a run, a cancel request, a purge) sends a
notification in its own transaction, so it arrives after the commit. A notification only wakes:
followers then read the events from the tables, and every wait also ends after ``poll_seconds``
(the safety net), so a notification lost to a dropped connection loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from chat_shell import ChatEvent, NotFoundError, RunInfo, RunStore, SessionBusyError, StorageError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ._batches import Batches
from ._connect import Connection, check_url, connect, open_pool
from ._errors import describe, storage_error

__all__ = ["PostgresRunStore"]

logger = logging.getLogger("chat_shell_postgres")

CHANNEL = "chat_shell_runs"
DEFAULT_POLL_SECONDS = 1.0
_READ_PAGE = 2000  # events a follower reads at a time

_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"
_RUN_COLUMNS = (
    "info, holder, done, finished_at, lease_expires_at, cancel_requested, last_seq, event_bytes"
)
# what a holder's summary may not change: who and what the run is, and what the store keeps
_IDENTITY = ("run_id", "session_id", "owner", "holder", "created_at", "stores_history")
# what a holder's summary does change: the rest (last_seq and event_bytes follow from the
# events); a summary with an end given to a batch leaves the end to finish_run
_PROGRESS = set(RunInfo.model_fields) - {
    *_IDENTITY,
    "cancel_requested",
    "lease_expires_at",
    "last_seq",
    "event_bytes",
}
_PROGRESS_NOT_ENDING = _PROGRESS - {"status", "finished_at"}

# A flush (and a run's end) is four statements whatever the number of runs in it: lock the
# rows, insert every event, update every run (its summary's progress fields merged into the
# stored JSON), notify. The arrays go in binary (%b): psycopg's text format would escape every
# quote of every event's JSON with a regular expression, the most of a flush's cost.
_LOCK_RUNS = (
    "SELECT run_id, done, last_seq FROM chat_shell_runs WHERE run_id = ANY(%s)"
    " ORDER BY run_id FOR UPDATE"
)
_INSERT_EVENTS = (
    "INSERT INTO chat_shell_run_events (run_id, seq, body)"
    " SELECT * FROM unnest(%b::text[], %b::integer[], %b::text[])"
)
_UPDATE_RUNS = (
    "UPDATE chat_shell_runs AS r SET last_seq = v.last_seq,"
    " event_bytes = r.event_bytes + v.added,"
    " info = coalesce((r.info::jsonb || v.progress::jsonb)::text, r.info){ending}"
    " FROM unnest(%b::text[], %b::integer[], %b::bigint[], %b::text[], %b::float8[])"
    " AS v(run_id, last_seq, added, progress, finished_at) WHERE r.run_id = v.run_id"
)
_UPDATE_BATCHES = _UPDATE_RUNS.format(ending="")
_UPDATE_ENDS = _UPDATE_RUNS.format(
    ending=", done = true, lease_expires_at = NULL,"
    " finished_at = coalesce(v.finished_at, extract(epoch FROM clock_timestamp())::float8)"
)
_INSERT_RUNS = (
    "INSERT INTO chat_shell_runs (run_id, session_id, holder, lease_expires_at, info)"
    " SELECT run_id, session_id, holder, extract(epoch FROM clock_timestamp())::float8 + lease,"
    " info FROM unnest(%b::text[], %b::text[], %b::text[], %b::float8[], %b::text[])"
    " AS v(run_id, session_id, holder, lease, info)"
    " ON CONFLICT DO NOTHING RETURNING run_id, lease_expires_at"
)
_NOTIFY_EACH = "SELECT pg_notify(%s, payload) FROM unnest(%b::text[]) AS payload"
_NOTICE_BYTES = 7000  # PostgreSQL's limit on a payload is 8000 bytes


def _row_info(row: Sequence[Any]) -> RunInfo:
    info, holder, done, finished_at, lease, cancel, last_seq, event_bytes = row
    stored = RunInfo.model_validate_json(info)
    return stored.model_copy(
        update={
            "holder": holder,
            "finished_at": finished_at if done else stored.finished_at,
            "lease_expires_at": lease,
            "cancel_requested": cancel,
            "last_seq": last_seq,
            "event_bytes": event_bytes,
        }
    )


def _notice(kind: str, run_id: str, holder: str | None = None) -> str:
    return json.dumps({"k": kind, "r": run_id, "h": holder}, separators=(",", ":"))


def _event_notices(run_ids: Sequence[str]) -> list[str]:
    """News of several runs' events in as few notifications as fit PostgreSQL's payloads."""
    notices: list[str] = []
    chunk: list[str] = []
    size = 0
    for run_id in run_ids:
        length = len(json.dumps(run_id)) + 1  # its size in the list, escapes and comma included
        if chunk and size + length > _NOTICE_BYTES:
            notices.append(json.dumps({"k": "e", "r": chunk}, separators=(",", ":")))
            chunk, size = [], 0
        chunk.append(run_id)
        size += length
    if chunk:
        notices.append(json.dumps({"k": "e", "r": chunk}, separators=(",", ":")))
    return notices


class _Waiters:
    """Futures waiting for news of a run (followers) or of a holder's cancels."""

    def __init__(self) -> None:
        self.runs: dict[str, set[asyncio.Future[None]]] = {}
        self.cancels: dict[str, set[asyncio.Queue[str | None]]] = {}

    def wait_run(self, run_id: str) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self.runs.setdefault(run_id, set()).add(future)
        return future

    def forget_run(self, run_id: str, future: asyncio.Future[None]) -> None:
        waiting = self.runs.get(run_id)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self.runs[run_id]

    def wake_run(self, run_id: str) -> None:
        for future in self.runs.pop(run_id, ()):
            if not future.done():
                future.set_result(None)

    def wake_all(self) -> None:
        for run_id in list(self.runs):
            self.wake_run(run_id)


class PostgresRunStore(RunStore):
    """Runs and their events in a PostgreSQL database (``url`` as for ``PostgresStorage``).

    ``poll_seconds``: how long a follower or a cancel watcher waits for a notification before
    it looks anyway (the safety net for a notification lost with a dropped connection).
    """

    name = "postgres"

    def __init__(
        self,
        url: str | None = None,
        *,
        path: str | None = None,  # the file stores' option: settings may pass it, unused here
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.url = check_url(url, what="the postgres run store")
        self.pool_size = pool_size
        self.connect_timeout = float(connect_timeout)
        self.poll_seconds = float(poll_seconds)
        self.where = describe(self.url)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._waiters = _Waiters()
        self._closed = False
        # bursts of claims and of ends go to the database together (see _batches)
        self._claims: Batches[tuple[RunInfo, float], RunInfo] = Batches(
            self._create_runs, abandon=self._forget_claims
        )
        self._ends: Batches[tuple[str, Sequence[ChatEvent], RunInfo], bool] = Batches(
            self._finish_runs
        )

    # -- opening and closing -----------------------------------------------------------------

    async def initialize(self) -> None:
        if self._pool is not None:
            return
        self._closed = False
        self._pool = await open_pool(
            self.url, self.pool_size, self.connect_timeout, "chat-shell runs"
        )
        first = await connect(self.url, self.connect_timeout, autocommit=True)
        await first.execute(f"LISTEN {CHANNEL}")
        self._listener = asyncio.create_task(self._listen(first), name="chat-shell runs listener")

    async def close(self) -> None:
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        self._waiters.wake_all()
        for queues in self._waiters.cancels.values():
            for queue in queues:
                queue.put_nowait(None)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _listen(self, conn: Connection | None) -> None:
        """The one listening connection of this store: dispatch notifications; reconnect (and
        wake everyone, who then read what they may have missed) when it drops."""
        delay = 0.1
        while not self._closed:
            try:
                if conn is None:
                    conn = await connect(self.url, self.connect_timeout, autocommit=True)
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._waiters.wake_all()
                    self._wake_cancel_watchers()
                delay = 0.1
                async for notify in conn.notifies():
                    self._dispatch(notify.payload)
            except (psycopg.Error, StorageError, OSError) as exc:
                logger.warning(
                    "runs listener lost PostgreSQL at %s (%s); reconnecting", self.where, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    conn = None

    def _dispatch(self, payload: str) -> None:
        try:
            notice = json.loads(payload)
            kind, run_id, holder = notice["k"], notice["r"], notice.get("h")
        except (ValueError, KeyError, TypeError):
            return
        if kind == "e":
            for one in run_id if isinstance(run_id, list) else (run_id,):
                self._waiters.wake_run(one)
        elif kind == "c":
            for queue in self._waiters.cancels.get(holder or "", ()):
                queue.put_nowait(run_id)
        elif kind == "p":
            self._waiters.wake_all()

    def _wake_cancel_watchers(self) -> None:
        for queues in self._waiters.cancels.values():
            for queue in queues:
                queue.put_nowait("")  # "": look again in the table

    # -- connections -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self, *, begin: bool = True) -> AsyncIterator[Connection]:
        """A pooled connection in a transaction; ``begin=False`` for one statement, which is
        a transaction of its own (the pool's connections are in autocommit mode)."""
        pool = self._pool
        if pool is None:
            raise StorageError(
                "PostgresRunStore is not initialized: call `await store.initialize()`"
            )
        try:
            async with pool.connection() as conn:
                if not begin:
                    yield conn
                    return
                async with conn.transaction():
                    yield conn
        except PoolTimeout as exc:
            raise StorageError(
                f"no connection to PostgreSQL at {self.where} within {pool.timeout:g} s"
                f" ({exc}); is the server up, or are all connections busy?"
            ) from exc
        except psycopg.errors.UniqueViolation:
            raise
        except psycopg.Error as exc:
            raise storage_error(self.url, exc) from exc

    @staticmethod
    async def _now(conn: Connection) -> float:
        cursor = await conn.execute(_NOW)
        row = await cursor.fetchone()
        assert row is not None
        return float(row[0])

    @staticmethod
    async def _notify(conn: Connection, payload: str) -> None:
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def _locked(self, conn: Connection, run_id: str) -> RunInfo:
        cursor = await conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM chat_shell_runs WHERE run_id = %s FOR UPDATE",  # noqa: S608
            (run_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"no run {run_id}")
        return _row_info(row)

    # -- a run's life ------------------------------------------------------------------------

    async def create_run(self, info: RunInfo, *, lease_seconds: float) -> RunInfo:
        if info.done:
            raise ValueError("a new run must be queued or running")
        return await self._claims.submit((info, lease_seconds))

    async def _create_runs(self, claims: list[tuple[RunInfo, float]]) -> list[RunInfo | Exception]:
        """Insert the runs of several claims in one statement (the leases reckoned by the
        database's clock); a claim that conflicts answers why: its run exists, or its session
        has a run in progress."""
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                _INSERT_RUNS,
                (
                    [info.run_id for info, _ in claims],
                    [info.session_id for info, _ in claims],
                    [info.holder for info, _ in claims],
                    [lease for _, lease in claims],
                    [
                        info.model_dump_json(exclude={"lease_expires_at", "last_seq"})
                        for info, _ in claims
                    ],
                ),
            )
            leases = {row[0]: row[1] for row in await cursor.fetchall()}
            taken: set[str] = set(leases)
            refused = [info for info, _ in claims if info.run_id not in taken]
            existing: set[str] = set()
            holding: dict[str, str] = {}
            if refused:
                cursor = await conn.execute(
                    "SELECT run_id, session_id, done FROM chat_shell_runs"
                    " WHERE run_id = ANY(%s) OR (session_id = ANY(%s) AND NOT done)",
                    ([info.run_id for info in refused], [info.session_id for info in refused]),
                )
                for run_id, session_id, done in await cursor.fetchall():
                    existing.add(run_id)
                    if not done:
                        holding[session_id] = run_id
        answers: list[RunInfo | Exception] = []
        for info, _ in claims:
            if info.run_id in taken:
                taken.discard(info.run_id)  # a second claim of one run id in the batch: exists
                update = {"lease_expires_at": leases[info.run_id], "last_seq": -1}
                answers.append(info.model_copy(deep=True, update=update))
            elif info.run_id in existing or info.run_id in leases:
                answers.append(ValueError(f"run {info.run_id} exists"))
            else:
                busy = holding.get(info.session_id, "")
                answers.append(SessionBusyError(info.session_id, busy))
        return answers

    async def _forget_claims(self, claims: list[RunInfo]) -> None:
        """Take back claims whose caller was cancelled while they were written (a run nobody
        runs would hold its session until its lease lapsed)."""
        try:
            async with self._transaction(begin=False) as conn:
                await conn.execute(
                    "DELETE FROM chat_shell_runs WHERE run_id = ANY(%s) AND NOT done"
                    " AND last_seq = -1",
                    ([info.run_id for info in claims],),
                )
        except StorageError as exc:
            logger.warning("could not take back %d abandoned claims: %s", len(claims), exc)

    async def append_events(
        self, run_id: str, events: Sequence[ChatEvent], info: RunInfo | None = None
    ) -> None:
        await self.append_batches([(run_id, events, info)])

    async def append_batches(
        self, batches: Sequence[tuple[str, Sequence[ChatEvent], RunInfo | None]]
    ) -> None:
        if batches:
            # one transaction for every run of the flush
            async with self._transaction() as conn:
                await self._write(conn, batches, ending=False)

    async def finish_run(self, run_id: str, events: Sequence[ChatEvent], info: RunInfo) -> bool:
        if not info.done:
            raise ValueError("finish_run needs a final status")
        return await self._ends.submit((run_id, events, info))

    async def _finish_runs(
        self, ends: list[tuple[str, Sequence[ChatEvent], RunInfo]]
    ) -> list[bool | Exception]:
        first = list({end[0]: end for end in reversed(ends)}.values())  # a run ends once
        async with self._transaction() as conn:
            written = set(await self._write(conn, first, ending=True))
        answers: list[bool | Exception] = []
        for run_id, _events, _info in ends:
            answers.append(run_id in written)
            written.discard(run_id)  # the same run twice in one batch: the second is too late
        return answers

    async def _write(
        self,
        conn: Connection,
        batches: Sequence[tuple[str, Sequence[ChatEvent], RunInfo | None]],
        *,
        ending: bool,
    ) -> list[str]:
        """Append each batch's new events and merge its summary's progress into the stored one
        (``ending``: and end the runs), in the open transaction and in four statements; the
        ids of the runs written (a run that has ended takes nothing more). Rows are locked in
        one order, so two holders' flushes never deadlock."""
        ordered = sorted(batches, key=lambda batch: batch[0])
        cursor = await conn.execute(_LOCK_RUNS, (sorted({batch[0] for batch in ordered}),))
        stored = {row[0]: (bool(row[1]), int(row[2])) for row in await cursor.fetchall()}
        events_of: tuple[list[str], list[int], list[str]] = ([], [], [])
        # run id -> (last seq, bytes added, progress JSON, finished_at)
        runs: dict[str, tuple[int, int, str | None, float | None]] = {}
        for run_id, events, info in ordered:
            if run_id not in stored:
                raise NotFoundError(f"no run {run_id}")
            done, last_seq = stored[run_id]
            if done:
                continue  # its holder lost it
            last_seq, added, progress, finished_at = runs.get(run_id, (last_seq, 0, None, None))
            for event in events:
                if event.seq <= last_seq:
                    continue  # stored already
                if event.seq != last_seq + 1:
                    raise ValueError(f"run {run_id}: event seq {event.seq} after {last_seq}")
                body = event.model_dump_json()
                events_of[0].append(run_id)
                events_of[1].append(event.seq)
                events_of[2].append(body)
                added += len(body.encode())
                last_seq = event.seq
            if info is not None:
                fields = _PROGRESS_NOT_ENDING if info.done and not ending else _PROGRESS
                progress = info.model_dump_json(include=fields)
                finished_at = info.finished_at if ending else None
            runs[run_id] = (last_seq, added, progress, finished_at)
        if events_of[0]:
            await conn.execute(_INSERT_EVENTS, events_of)
        ids = list(runs)
        if ids:
            await conn.execute(
                _UPDATE_ENDS if ending else _UPDATE_BATCHES,
                (ids, *([runs[i][k] for i in ids] for k in range(4))),
            )
        woken = [run_id for run_id in ids if ending or runs[run_id][1]]
        if woken:
            await conn.execute(_NOTIFY_EACH, (CHANNEL, _event_notices(woken)))
        return ids

    async def renew_leases(
        self, holder: str, run_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        if not run_ids:
            return set()
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                "UPDATE chat_shell_runs"
                " SET lease_expires_at = extract(epoch FROM clock_timestamp())::float8 + %s"
                " WHERE run_id = ANY(%s) AND holder = %s AND NOT done RETURNING run_id",
                (lease_seconds, list(run_ids), holder),
            )
            return {row[0] for row in await cursor.fetchall()}

    async def interrupt_expired(self, *, now: float | None = None) -> list[RunInfo]:
        async with self._transaction() as conn:
            if now is None:
                now = await self._now(conn)
            # SKIP LOCKED: two sweepers never wait for each other, and never end a run twice
            cursor = await conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM chat_shell_runs"  # noqa: S608
                " WHERE NOT done AND lease_expires_at < %s ORDER BY run_id"
                " FOR UPDATE SKIP LOCKED",
                (now,),
            )
            rows = await cursor.fetchall()
            if not rows:
                return []
            endings = [self.interrupted(_row_info(row), now) for row in rows]
            await self._write(
                conn, [(info.run_id, [event], info) for info, event in endings], ending=True
            )
        return [
            info.model_copy(update={"event_bytes": row[7] + len(event.model_dump_json().encode())})
            for row, (info, event) in zip(rows, endings, strict=True)
        ]

    # -- reading -----------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunInfo:
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM chat_shell_runs WHERE run_id = %s",  # noqa: S608
                (run_id,),
            )
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"no run {run_id}")
        return _row_info(row)

    async def _read(
        self, run_id: str, after: int, limit: int | None
    ) -> tuple[list[ChatEvent], bool, int] | None:
        """(events after ``after``, whether the run has ended, its last seq); ``None`` if the
        run is unknown. One statement, so one snapshot: an ended run's events are all there."""
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                "SELECT r.done, r.last_seq, e.body FROM chat_shell_runs AS r"
                " LEFT JOIN LATERAL (SELECT seq, body FROM chat_shell_run_events"
                " WHERE run_id = r.run_id AND seq > %s ORDER BY seq LIMIT %s) AS e ON true"
                " WHERE r.run_id = %s ORDER BY e.seq",
                (after, limit, run_id),
            )
            rows = await cursor.fetchall()
        if not rows:
            return None
        events = [ChatEvent.model_validate_json(body) for _d, _s, body in rows if body is not None]
        return events, bool(rows[0][0]), int(rows[0][1])

    async def read_events(
        self, run_id: str, *, after: int = -1, limit: int | None = None
    ) -> list[ChatEvent]:
        found = await self._read(run_id, after, None if limit is None else max(limit, 0))
        if found is None:
            raise NotFoundError(f"no run {run_id}")
        return found[0]

    async def follow(self, run_id: str, *, after: int = -1) -> AsyncIterator[ChatEvent]:
        seen = after
        first = True
        waiters = self._waiters
        while True:
            # wait registered before reading: a notification during the read is not missed
            future = waiters.wait_run(run_id)
            try:
                found = await self._read(run_id, seen, _READ_PAGE)
                if found is None:
                    if first:
                        raise NotFoundError(f"no run {run_id}")
                    return  # purged while followed
                first = False
                events, done, last_seq = found
                for event in events:
                    yield event
                    seen = event.seq
                if done and seen >= last_seq:
                    return
                if events or self._closed:
                    if self._closed:
                        return
                    continue  # maybe more to read at once
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that arrives as the awaited thing completes
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await future
            finally:
                waiters.forget_run(run_id, future)

    async def session_run(self, session_id: str) -> str | None:
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                "SELECT run_id FROM chat_shell_runs WHERE session_id = %s AND NOT done",
                (session_id,),
            )
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        async with self._transaction() as conn:
            current = await self._locked(conn, run_id)
            if current.done:
                return False
            await conn.execute(
                "UPDATE chat_shell_runs SET cancel_requested = true WHERE run_id = %s", (run_id,)
            )
            await self._notify(conn, _notice("c", run_id, current.holder))
        return True

    async def answer_approval(self, run_id: str, call_id: str, approved: bool) -> bool:
        async with self._transaction() as conn:
            current = await self._locked(conn, run_id)  # the run's row: one answer at a time
            if current.done:
                return False
            cursor = await conn.execute(
                "INSERT INTO chat_shell_run_approvals (run_id, call_id, approved, answered_at)"
                " VALUES (%s, %s, %s, extract(epoch FROM clock_timestamp()))"
                " ON CONFLICT DO NOTHING",
                (run_id, call_id, approved),
            )
            return cursor.rowcount == 1

    async def approval_answer(self, run_id: str, call_id: str) -> bool | None:
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                "SELECT approved FROM chat_shell_run_approvals WHERE run_id = %s AND call_id = %s",
                (run_id, call_id),
            )
            row = await cursor.fetchone()
        return None if row is None else bool(row[0])

    async def _requested(self, holder: str) -> list[str]:
        async with self._transaction(begin=False) as conn:
            cursor = await conn.execute(
                "SELECT run_id FROM chat_shell_runs"
                " WHERE holder = %s AND NOT done AND cancel_requested ORDER BY run_id",
                (holder,),
            )
            return [str(row[0]) for row in await cursor.fetchall()]

    async def watch_cancels(self, holder: str) -> AsyncIterator[str]:
        if self._closed or self._pool is None:
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        queues = self._waiters.cancels.setdefault(holder, set())
        queues.add(queue)
        told: set[str] = set()
        try:
            look = True  # the table first: requests made before the call
            while not self._closed:
                if look:
                    for run_id in await self._requested(holder):
                        if run_id not in told:
                            told.add(run_id)
                            yield run_id
                try:
                    async with asyncio.timeout(self.poll_seconds):  # (not wait_for: see follow)
                        requested = await queue.get()
                except TimeoutError:
                    look = True  # the safety net
                    continue
                if requested is None:
                    return
                look = requested == ""
                if requested and requested not in told:
                    told.add(requested)
                    yield requested
        finally:
            queues.discard(queue)
            if not queues:
                self._waiters.cancels.pop(holder, None)

    # -- retention ---------------------------------------------------------------------------

    async def purge(
        self,
        *,
        max_age_seconds: float | None = None,
        max_count: int | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> int:
        removed = 0
        async with self._transaction() as conn:
            if now is None:
                now = await self._now(conn)
            if max_age_seconds is not None:
                cursor = await conn.execute(
                    "DELETE FROM chat_shell_runs WHERE done AND finished_at < %s",
                    (now - max_age_seconds,),
                )
                removed += cursor.rowcount
            if max_count is not None:
                cursor = await conn.execute(
                    "DELETE FROM chat_shell_runs WHERE run_id IN (SELECT run_id FROM"
                    " chat_shell_runs WHERE done ORDER BY finished_at DESC, run_id DESC"
                    " OFFSET %s)",
                    (max(max_count, 0),),
                )
                removed += cursor.rowcount
            if max_bytes is not None:
                # keep the newest runs whose events fit in max_bytes; the oldest go first
                cursor = await conn.execute(
                    "DELETE FROM chat_shell_runs WHERE run_id IN (SELECT run_id FROM"
                    " (SELECT run_id, sum(event_bytes) OVER (ORDER BY finished_at DESC,"
                    " run_id DESC) AS kept FROM chat_shell_runs WHERE done) AS newest"
                    " WHERE kept > %s)",
                    (max_bytes,),
                )
                removed += cursor.rowcount
            if removed:
                await self._notify(conn, _notice("p", ""))
        return removed
