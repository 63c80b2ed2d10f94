"""A run: one agent turn executing in its own task, with a replayable, followable event log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from ._events import ChatEvent, EventType, Usage

__all__ = ["AgentRun", "RunState"]

RunState = Literal["queued", "running", "completed", "failed", "cancelled", "incomplete"]
FINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "incomplete"})


class AgentRun:
    """The state and events of one run.

    Events are kept in order; any number of readers can ``follow(after=seq)`` from any point,
    each at its own pace, so a slow reader never holds up the run or other readers.
    """

    def __init__(self, session_id: str, run_id: str | None = None) -> None:
        self.id = run_id or f"run_{uuid.uuid4().hex}"
        self.session_id = session_id
        self.state: RunState = "queued"
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.events: list[ChatEvent] = []
        self.content_parts: list[str] = []
        self.usage: Usage = {}
        self.model: str | None = None
        self.error: dict[str, Any] | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    def emit(self, event_type: EventType, data: dict[str, Any]) -> ChatEvent:
        event = ChatEvent.make(
            event_type, data, run_id=self.id, session_id=self.session_id, seq=len(self.events)
        )
        self.events.append(event)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        return event

    def finish(self, state: RunState) -> None:
        self.state = state
        self.finished_at = time.time()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def follow(self, after: int = -1) -> AsyncIterator[ChatEvent]:
        """Every event with ``seq > after``, then the new ones as they come, until the run ends."""
        index = max(after + 1, 0)
        events = self.events
        while True:
            while index < len(events):
                yield events[index]
                index += 1
            if self.done:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def cancel(self) -> bool:
        """Ask the run to stop; ``False`` if it had already ended. Asking twice is harmless."""
        if self.done or self.task is None:
            return False
        if not self.cancel_requested:
            self.cancel_requested = True
            self.task.cancel()
        return True

    async def wait(self) -> AgentRun:
        """Wait until the run has ended (however it ended) and return it."""
        if self.task is not None and not self.done:
            await asyncio.shield(self.task)
        return self

    def summary(self) -> dict[str, Any]:
        """Status, timestamps, output so far and usage, as plain data."""
        return {
            "run_id": self.id,
            "session_id": self.session_id,
            "status": self.state,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "content": self.content,
            "usage": dict(self.usage),
            "model": self.model,
            "error": self.error,
            "tool_calls": list(self.tool_calls),
            "last_seq": len(self.events) - 1,
        }
