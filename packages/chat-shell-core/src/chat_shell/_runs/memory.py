"""Runs in this process's memory: the library's default store; gone when the process ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .._errors import NotFoundError, SessionBusyError
from .._events import ChatEvent
from .contract import RunInfo, RunStore
from .run import PackedEvents

__all__ = ["MemoryRunStore"]


@dataclass(slots=True)
class _Entry:
    info: RunInfo
    events: list[ChatEvent] | PackedEvents = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    approvals: dict[str, bool] = field(default_factory=dict)  # call id -> answer

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class _Backing:
    """What every ``MemoryRunStore`` sharing it sees: the runs, the claims, the watchers."""

    def __init__(self) -> None:
        self.runs: dict[str, _Entry] = {}
        self.claims: dict[str, str] = {}  # session id -> run in progress
        self.cancel_queues: dict[str, list[asyncio.Queue[str | None]]] = {}


class MemoryRunStore(RunStore):
    """Runs in memory, shared by the store objects made with ``sharing`` (one event loop).

    Events of a run in progress are kept as objects; when it ends they are packed into one
    block of JSON (``PackedEvents``), so thousands of retained runs cost the garbage collector
    nothing to walk, and ``event_bytes`` is exact.
    """

    name = "memory"

    def __init__(self) -> None:
        self._backing = _Backing()
        self._closed = False
        self._queues: list[asyncio.Queue[str | None]] = []

    @classmethod
    def sharing(cls, other: MemoryRunStore) -> MemoryRunStore:
        """Another store object on ``other``'s backing (as two processes opening one file)."""
        store = cls()
        store._backing = other._backing
        return store

    def _entry(self, run_id: str) -> _Entry:
        entry = self._backing.runs.get(run_id)
        if entry is None:
            raise NotFoundError(f"no run {run_id}")
        return entry

    async def close(self) -> None:
        self._closed = True
        mine = self._queues
        for queues in self._backing.cancel_queues.values():
            queues[:] = [q for q in queues if q not in mine]
        for queue in mine:
            queue.put_nowait(None)
        self._queues = []

    async def create_run(self, info: RunInfo, *, lease_seconds: float) -> RunInfo:
        backing = self._backing
        if info.done:
            raise ValueError("a new run must be queued or running")
        if info.run_id in backing.runs:
            raise ValueError(f"run {info.run_id} exists")
        holding = backing.claims.get(info.session_id)
        if holding is not None:
            raise SessionBusyError(info.session_id, holding)
        stored = info.model_copy(
            deep=True, update={"lease_expires_at": time.time() + lease_seconds, "last_seq": -1}
        )
        backing.runs[info.run_id] = _Entry(stored)
        backing.claims[info.session_id] = info.run_id
        return stored.model_copy(deep=True)

    def _append(self, entry: _Entry, events: Sequence[ChatEvent]) -> None:
        stored = entry.events
        assert isinstance(stored, list)
        for event in events:
            if event.seq < len(stored):
                continue
            if event.seq != len(stored):
                raise ValueError(
                    f"run {entry.info.run_id}: event seq {event.seq} after {len(stored) - 1}"
                )
            stored.append(event)

    def _progress(self, entry: _Entry, info: RunInfo | None) -> None:
        current = entry.info
        if info is not None:
            # Shallow: a holder passes a fresh summary with each batch (the contract: it does
            # not change it afterwards); a deep copy per batch would cost more than the batch.
            current = info.model_copy(
                update={
                    "run_id": current.run_id,
                    "session_id": current.session_id,
                    "owner": current.owner,
                    "holder": current.holder,
                    "created_at": current.created_at,
                    "lease_expires_at": current.lease_expires_at,
                    "cancel_requested": current.cancel_requested,
                    "stores_history": current.stores_history,
                },
            )
        current.last_seq = len(entry.events) - 1
        entry.info = current

    async def append_events(
        self, run_id: str, events: Sequence[ChatEvent], info: RunInfo | None = None
    ) -> None:
        entry = self._entry(run_id)
        if entry.info.done:
            return
        self._append(entry, events)
        if info is not None and info.done:
            info = info.model_copy(update={"status": entry.info.status})
        self._progress(entry, info)
        entry.wake()

    def _end(self, entry: _Entry) -> None:
        packed = PackedEvents(entry.events)
        entry.events = packed
        entry.info.event_bytes = packed.nbytes
        entry.info.lease_expires_at = None
        claims = self._backing.claims
        if claims.get(entry.info.session_id) == entry.info.run_id:
            del claims[entry.info.session_id]
        entry.wake()

    async def finish_run(self, run_id: str, events: Sequence[ChatEvent], info: RunInfo) -> bool:
        entry = self._entry(run_id)
        if entry.info.done:
            return False
        if not info.done:
            raise ValueError("finish_run needs a final status")
        self._append(entry, events)
        self._progress(entry, info)
        if entry.info.finished_at is None:
            entry.info.finished_at = time.time()
        self._end(entry)
        return True

    async def renew_leases(
        self, holder: str, run_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        renewed = set()
        until = time.time() + lease_seconds
        for run_id in run_ids:
            entry = self._backing.runs.get(run_id)
            if entry is not None and not entry.info.done and entry.info.holder == holder:
                entry.info.lease_expires_at = until
                renewed.add(run_id)
        return renewed

    async def interrupt_expired(self, *, now: float | None = None) -> list[RunInfo]:
        now = time.time() if now is None else now
        ended = []
        for entry in list(self._backing.runs.values()):
            info = entry.info
            if info.done or info.lease_expires_at is None or info.lease_expires_at >= now:
                continue
            entry.info, event = self.interrupted(info, now)
            assert isinstance(entry.events, list)
            entry.events.append(event)
            self._end(entry)
            ended.append(entry.info.model_copy(deep=True))
        return ended

    async def get_run(self, run_id: str) -> RunInfo:
        return self._entry(run_id).info.model_copy(deep=True)

    async def read_events(
        self, run_id: str, *, after: int = -1, limit: int | None = None
    ) -> list[ChatEvent]:
        events = self._entry(run_id).events
        start = max(after + 1, 0)
        stop = len(events) if limit is None else min(len(events), start + max(limit, 0))
        return list(events[start:stop])

    async def follow(self, run_id: str, *, after: int = -1) -> AsyncIterator[ChatEvent]:
        entry = self._entry(run_id)
        index = max(after + 1, 0)
        while True:
            events = entry.events
            while index < len(events):
                yield events[index]
                index += 1
                events = entry.events  # packed meanwhile: the same events, another container
            if entry.info.done or self._backing.runs.get(run_id) is not entry or self._closed:
                return
            waiter = asyncio.get_running_loop().create_future()
            entry.waiters.append(waiter)
            await waiter

    async def session_run(self, session_id: str) -> str | None:
        return self._backing.claims.get(session_id)

    async def request_cancel(self, run_id: str) -> bool:
        entry = self._entry(run_id)
        if entry.info.done:
            return False
        entry.info.cancel_requested = True
        for queue in self._backing.cancel_queues.get(entry.info.holder or "", []):
            queue.put_nowait(run_id)
        return True

    async def answer_approval(self, run_id: str, call_id: str, approved: bool) -> bool:
        entry = self._entry(run_id)
        if entry.info.done or call_id in entry.approvals:
            return False
        entry.approvals[call_id] = approved
        return True

    async def approval_answer(self, run_id: str, call_id: str) -> bool | None:
        entry = self._backing.runs.get(run_id)
        return None if entry is None else entry.approvals.get(call_id)

    async def watch_cancels(self, holder: str) -> AsyncIterator[str]:
        if self._closed:
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        for entry in self._backing.runs.values():
            info = entry.info
            if info.holder == holder and info.cancel_requested and not info.done:
                queue.put_nowait(info.run_id)
        queues = self._backing.cancel_queues.setdefault(holder, [])
        queues.append(queue)
        self._queues.append(queue)
        try:
            while (requested := await queue.get()) is not None:
                yield requested
        finally:
            if queue in queues:
                queues.remove(queue)
            if queue in self._queues:
                self._queues.remove(queue)

    async def purge(
        self,
        *,
        max_age_seconds: float | None = None,
        max_count: int | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> int:
        now = time.time() if now is None else now
        runs = self._backing.runs
        finished = sorted(
            (entry.info for entry in runs.values() if entry.info.done),
            key=lambda info: info.finished_at or 0.0,
        )
        total = sum(info.event_bytes for info in finished)
        horizon = None if max_age_seconds is None else now - max_age_seconds
        removed = 0
        for position, info in enumerate(finished):
            left = len(finished) - position
            too_old = horizon is not None and (info.finished_at or 0.0) < horizon
            too_many = max_count is not None and left > max_count
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_many or too_big):
                break
            entry = runs.pop(info.run_id)
            entry.wake()  # followers of a purged run stop
            total -= info.event_bytes
            removed += 1
        return removed
