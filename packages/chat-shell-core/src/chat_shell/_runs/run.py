"""A run: one agent turn executing in its own task, with a replayable, followable event log."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, overload

from .._events import ChatEvent, EventType, Usage
from .contract import RunInfo

__all__ = ["AgentRun", "PackedEvents", "RunState"]

RunState = Literal[
    "queued", "running", "completed", "failed", "cancelled", "incomplete", "interrupted"
]
FINAL_STATES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "incomplete", "interrupted"}
)


class PackedEvents(Sequence[ChatEvent]):
    """The events of an ended run as one block of JSON and an offset table.

    Two objects instead of a few per event: a server that keeps thousands of finished runs for
    replay holds a fraction of the memory and gives the garbage collector nothing to walk.
    Events are rebuilt when read.
    """

    __slots__ = ("_blob", "_ends")

    def __init__(self, events: Sequence[ChatEvent]) -> None:
        parts = [event.model_dump_json().encode() for event in events]
        self._blob = b"".join(parts)
        self._ends = array("Q", itertools.accumulate(len(part) for part in parts))

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def nbytes(self) -> int:
        """Size of the events' JSON."""
        return len(self._blob)

    @overload
    def __getitem__(self, index: int) -> ChatEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[ChatEvent]: ...

    def __getitem__(self, index: int | slice) -> ChatEvent | list[ChatEvent]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("event index out of range")
        start = self._ends[index - 1] if index else 0
        return ChatEvent.model_validate_json(self._blob[start : self._ends[index]])


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
        self._events: list[ChatEvent] = []
        self._packed: PackedEvents | None = None
        self.content_parts: list[str] = []
        self.usage: Usage = {}
        self.model: str | None = None
        self.error: dict[str, Any] | None = None
        self.reason: str | None = None  # why the run stopped short (status incomplete)
        self.finish_reason: str | None = None  # the model's, for its last answer
        self.warnings: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        # The last model request's messages; what of the conversation it left out to fit the
        # model's context window, and how many of those a summary stood for.
        self.messages_sent: int | None = None
        self.messages_dropped = 0
        self.messages_summarized = 0
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self._waiters: list[asyncio.Future[None]] = []
        # What the run store keeps besides the events (see RunInfo).
        self.owner: str | None = None
        self.holder: str | None = None
        self.stores_history = True
        self.metadata: dict[str, Any] = {}
        self.step_parts: list[str] = []  # text of the model call in progress, not yet stored
        self.open_tool_calls: list[dict[str, Any]] = []  # stored calls without stored results
        # Set by the RunManager: resolved once the session is claimed (or failed to be).
        self.claimed: asyncio.Future[None] | None = None
        # Set by the RunManager: the answer its store holds to a call waiting for approval.
        self.approval_answer: Callable[[str], Awaitable[bool | None]] | None = None
        self.lost = False  # another process ended it (its lease lapsed): store nothing more

    @property
    def events(self) -> Sequence[ChatEvent]:
        """Every event so far, in ``seq`` order."""
        return self._packed if self._packed is not None else self._events

    def compact(self) -> None:
        """Pack the events of an ended run (see ``PackedEvents``); readers see no difference."""
        if self.done and self._packed is None:
            self._packed = PackedEvents(self._events)
            self._events = []
            self.content_parts = [self.content]

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    def emit(self, event_type: EventType, data: dict[str, Any]) -> ChatEvent:
        events = self._events
        event = ChatEvent.make(
            event_type, data, run_id=self.id, session_id=self.session_id, seq=len(events)
        )
        events.append(event)
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
        """Wait until the run has ended (however it ended) and its end is stored; return it."""
        if self.task is not None and not self.task.done():
            await asyncio.wait([self.task])  # never raises what the task raised
        return self

    def summary(self) -> RunInfo:
        """The run's ``RunInfo``: status, timestamps, output so far, usage, recovery notes."""
        return RunInfo.model_construct(
            run_id=self.id,
            session_id=self.session_id,
            owner=self.owner,
            status=self.state,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            content=self.content,
            usage=dict(self.usage),
            model=self.model,
            error=self.error,
            reason=self.reason,
            finish_reason=self.finish_reason,
            tool_calls=[dict(call) for call in self.tool_calls],
            warnings=list(self.warnings),
            messages_sent=self.messages_sent,
            messages_dropped=self.messages_dropped,
            messages_summarized=self.messages_summarized,
            last_seq=len(self.events) - 1,
            cancel_requested=self.cancel_requested,
            holder=self.holder,
            lease_expires_at=None,
            event_bytes=0,
            stores_history=self.stores_history,
            step_content="".join(self.step_parts),
            open_tool_calls=list(self.open_tool_calls),
            metadata=dict(self.metadata),
        )
