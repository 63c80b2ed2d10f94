"""The run-store contract: what a run is once it outlives the process that runs it.

A *run* is one agent turn. The process that executes it (its *holder*) keeps the live run in
memory (``AgentRun``) and serves its own followers from there; the run store is where the run's
summary (``RunInfo``) and its events live for everyone else: other processes on the machine,
other machines, the same process after a restart.

Every store implements ``RunStore``. The rules below hold for every implementation, whether
its backing is this process's memory, one SQLite file shared by many processes, or a
PostgreSQL database shared by many machines; ``chat_shell.testing.RunStoreSuite`` checks them.

**Runs and sessions.** ``create_run`` records a run in progress and *claims* its session: while
a run of a session is in progress (``status`` ``queued`` or ``running``) no other run of that
session can be created, by any store object on the same backing; the second ``create_run``
raises ``SessionBusyError`` naming the run that holds the session. The claim ends when the run
ends (``finish_run``, or ``interrupt_expired``). The check and the claim are one atomic step
(a unique constraint, a transaction), never a read followed by a write.

**Leases.** A run in progress is held under a lease (``lease_expires_at``, the store's clock):
the holder extends it with ``renew_leases`` well before it lapses (every third of the lease,
say). A run whose lease has lapsed belongs to a holder that died (or hung): the next
``interrupt_expired`` — called by any process, any number of times, concurrently — ends it
with status ``interrupted`` exactly once, appends its final ``complete`` event and releases the
session. A run is never re-run: whoever finds it interrupted stores its partial answer in the
history (``RunInfo.step_content``, ``RunInfo.open_tool_calls``) and moves on. A holder whose
``renew_leases`` no longer lists a run has lost it and must stop it without writing more.

**Events.** Each run has a log of ``ChatEvent`` with ``seq`` 0, 1, 2 … without gaps. The holder
appends them in batches (``append_events``, or ``append_batches`` for all its runs at once;
``finish_run`` appends the last batch, ending with the ``complete`` event). An event once
appended never changes; appending an event whose ``seq`` is already stored is ignored (a retried
batch is harmless), and a batch that would leave a gap is refused (``ValueError``). The summary
the holder passes with a batch is stored in the same atomic step as the events, so a reader
never sees a ``last_seq`` whose events are missing.

**Reading and following.** ``read_events(after=n)`` returns the stored events with
``seq > n`` in order. ``follow(after=n)`` yields the same, then every event appended later (by
any store object on the backing), in order, each exactly once, and ends after the run's final
``complete`` event; a follower of a finished run gets its whole log, whatever its length. A
store may poll or be notified; an appended event reaches a follower in another process within
100 ms (p99) for the durable stores, at once for the memory store.

**Cancellation.** ``request_cancel`` (any process) marks a run in progress as asked to stop;
its holder learns of it through ``watch_cancels`` (at once for the memory store, within 100 ms
for the others) and cancels its task, which then finishes the run (``cancelled``) itself.

**Approvals.** A tool call that needs approval is announced by the holder with an
``approval_required`` event (``id`` of the call, ``expires_at``). ``answer_approval`` (any
process) records the one answer to it; the holder, which waits for it, reads it with
``approval_answer`` (polling; an answer reaches it within 100 ms for the durable stores).
The first answer wins: a second one is refused, and so is an answer to a run that has ended.
Answers go with their run when it is purged.

**Retention.** Finished runs and their events are kept until ``purge`` removes them: those that
finished longer ago than ``max_age_seconds``, then the oldest beyond ``max_count``, then the
oldest until the finished runs' events take at most ``max_bytes`` (``RunInfo.event_bytes``: the
size of their JSON). A run in progress is never purged; history is never touched.

Times are Unix seconds. Run ids are ``run_`` + 32 hex digits unless the caller gives one.
Unknown run ids raise ``NotFoundError`` (so do purged ones).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._errors import SessionBusyError
from .._events import ChatEvent, EventType, Usage

__all__ = [
    "FINAL_STATUSES",
    "INTERRUPTED_REASON",
    "PUBLIC_FIELDS",
    "RunInfo",
    "RunStatusName",
    "RunStore",
    "SessionBusyError",
]

RunStatusName = Literal[
    "queued", "running", "completed", "failed", "cancelled", "incomplete", "interrupted"
]
# A run in one of these has ended: its session is free and its log is complete.
FINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "incomplete", "interrupted"}
)


class RunInfo(BaseModel):
    """The one summary of a run: what a status request answers, what a store keeps.

    The holder writes it (with each batch of events, and when the run ends); every other
    reader gets it from the store. Fields a client sees and fields only chat-shell uses are
    told apart in ``PUBLIC_FIELDS``.
    """

    model_config = ConfigDict(extra="ignore")

    run_id: str
    session_id: str = Field(description="the session as stored (with a key prefix on servers)")
    owner: str | None = Field(default=None, description="who started it (an API key's name)")
    status: RunStatusName = "running"
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    content: str = Field(default="", description="the answer so far (every model call's text)")
    usage: Usage = Field(default_factory=lambda: Usage())
    model: str | None = None
    error: dict[str, Any] | None = Field(
        default=None, description="`{code, message, retryable, …}` if the run failed"
    )
    reason: str | None = Field(default=None, description="why the run stopped short")
    finish_reason: str | None = Field(default=None, description="the model's, for its last answer")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    messages_sent: int | None = Field(
        default=None, description="messages in the last model request (the context window's fit)"
    )
    messages_dropped: int = Field(default=0, description="earlier messages left out to fit")
    messages_summarized: int = Field(default=0, description="earlier messages a summary replaced")
    last_seq: int = Field(default=-1, description="seq of the latest stored event (-1: none)")
    cancel_requested: bool = False
    # What only chat-shell uses: who holds the run, and what recovery needs.
    holder: str | None = Field(default=None, description="the process that runs it")
    lease_expires_at: float | None = None
    event_bytes: int = Field(
        default=0,
        description="size of the stored events' JSON (exact once the run has ended; a store "
        "may keep 0 before)",
    )
    stores_history: bool = Field(
        default=True, description="false for `store: false` runs: recovery writes no history"
    )
    step_content: str = Field(
        default="",
        description="text of the model call in progress, not yet in the history: what "
        "recovery stores as the interrupted answer",
    )
    open_tool_calls: list[dict[str, Any]] = Field(
        default_factory=list,
        description="tool calls (`{id, name}`) in the history that have no result there yet: "
        "recovery gives each one an 'interrupted' result",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="the edge's own notes, e.g. the client's session id"
    )

    @property
    def done(self) -> bool:
        """Whether the run has ended."""
        return self.status in FINAL_STATUSES


PUBLIC_FIELDS: frozenset[str] = frozenset(
    {
        "run_id",
        "session_id",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "content",
        "usage",
        "model",
        "error",
        "reason",
        "finish_reason",
        "tool_calls",
        "messages_sent",
        "messages_dropped",
        "messages_summarized",
        "last_seq",
    }
)


INTERRUPTED_REASON = "the process running it stopped before the run ended"


class RunStore(ABC):
    """Runs and their events, shared by every process that opens the same backing.

    Stores register a factory (usually the class) under the ``chat_shell.runs`` entry-point
    group, under the same name as their history backend (``memory``, ``sqlite``,
    ``postgres``); the factory takes the same keyword options (``path``, ``url`` …). Every
    method may be called concurrently from many tasks; none blocks the event loop.
    """

    name: str = ""

    async def initialize(self) -> None:
        """Open files, connections, listeners; run migrations. Safe to call twice."""
        return

    async def close(self) -> None:
        """Release everything; iterators of ``follow``/``watch_cancels`` end. Safe twice."""
        return

    async def __aenter__(self) -> RunStore:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @staticmethod
    def interrupted(info: RunInfo, now: float) -> tuple[RunInfo, ChatEvent]:
        """A lapsed run ended as ``interrupted``: its final summary and its ``complete`` event.

        Every store's ``interrupt_expired`` writes exactly these, so that a run interrupted on
        SQLite reads the same as one interrupted on PostgreSQL.
        """
        seq = info.last_seq + 1
        event = ChatEvent.model_construct(
            event_type=EventType.COMPLETE,
            data={
                "status": "interrupted",
                "content": info.content,
                "usage": dict(info.usage),
                "model": info.model,
                "reason": INTERRUPTED_REASON,
            },
            run_id=info.run_id,
            session_id=info.session_id,
            seq=seq,
            timestamp=now,
        )
        ended = info.model_copy(
            update={
                "status": "interrupted",
                "finished_at": now,
                "reason": INTERRUPTED_REASON,
                "last_seq": seq,
                "lease_expires_at": None,
            }
        )
        return ended, event

    # -- a run's life ----------------------------------------------------------------------

    @abstractmethod
    async def create_run(self, info: RunInfo, *, lease_seconds: float) -> RunInfo:
        """Record a new run in progress and claim its session, atomically.

        ``info`` gives the run's id, session, owner, holder, ``created_at`` and the rest
        (``status`` must be ``queued`` or ``running``; ``last_seq`` -1). The store sets
        ``lease_expires_at`` to its clock's now + ``lease_seconds`` and returns the stored
        summary. Raises ``SessionBusyError`` (with ``.run_id`` of the run in progress) if the
        session already has a run in progress, even one whose lease has lapsed but that no
        ``interrupt_expired`` has ended yet; ``ValueError`` if the run id exists.
        """

    @abstractmethod
    async def append_events(
        self, run_id: str, events: Sequence[ChatEvent], info: RunInfo | None = None
    ) -> None:
        """Append a batch of a run in progress's events (``seq`` ascending), and with it,
        in the same atomic step, the holder's current summary ``info`` (its progress fields:
        status, started_at, content, usage, model, error, reason, finish_reason, tool_calls,
        warnings, step_content, open_tool_calls, metadata; ``last_seq`` and ``event_bytes``
        follow from the events).

        Events whose ``seq`` is already stored are skipped; a gap raises ``ValueError``. A
        run that has ended takes nothing more: the call is ignored (its holder lost it). The
        caller does not change ``events`` or ``info`` afterwards (a store may keep them).
        """

    async def append_batches(
        self, batches: Sequence[tuple[str, Sequence[ChatEvent], RunInfo | None]]
    ) -> None:
        """``append_events`` for several runs (``(run_id, events, info)`` each) in one atomic
        step: what a holder's flush calls every 50 ms for all its runs, so that a process with
        200 live runs writes once per flush, not 200 times. The default calls
        ``append_events`` per run; durable stores write one transaction."""
        for run_id, events, info in batches:
            await self.append_events(run_id, events, info)

    @abstractmethod
    async def finish_run(self, run_id: str, events: Sequence[ChatEvent], info: RunInfo) -> bool:
        """End a run: append its last events (the final one its ``complete`` event), store
        the final summary ``info`` (a final ``status``, ``finished_at``) and release its
        session, atomically. ``False`` (and nothing changes) if the run had already ended,
        e.g. ``interrupt_expired`` ended it after its lease lapsed.
        """

    @abstractmethod
    async def renew_leases(
        self, holder: str, run_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        """Extend to now + ``lease_seconds`` the lease of each of ``run_ids`` still in
        progress and held by ``holder``; the ids renewed. One id missing from the answer is a
        run that ``holder`` no longer holds (it ended, or lapsed and was interrupted)."""

    @abstractmethod
    async def interrupt_expired(self, *, now: float | None = None) -> list[RunInfo]:
        """End every run in progress whose lease lapsed before ``now`` (default: the store's
        clock) with status ``interrupted``: its final ``complete`` event is appended
        (``{"status": "interrupted", "content", "usage", "model", "reason"}``, at
        ``last_seq + 1``), ``finished_at`` set, its session released.

        Each lapsed run is ended by exactly one call, however many processes call at once,
        and is returned by that call only (with its summary as it was last stored, now
        ``interrupted``) so that its caller stores the partial answer in the history.
        """

    # -- reading -----------------------------------------------------------------------------

    @abstractmethod
    async def get_run(self, run_id: str) -> RunInfo:
        """The run's stored summary; ``NotFoundError`` if unknown or purged."""

    @abstractmethod
    async def read_events(
        self, run_id: str, *, after: int = -1, limit: int | None = None
    ) -> list[ChatEvent]:
        """The stored events with ``seq > after``, in order (at most ``limit`` of them);
        ``NotFoundError`` if the run is unknown."""

    @abstractmethod
    def follow(self, run_id: str, *, after: int = -1) -> AsyncIterator[ChatEvent]:
        """Every event with ``seq > after``: those stored, then those appended later by any
        store object on the backing, in order, each once, ending after the final
        ``complete`` event (at once for a run that has ended and been read to its end).

        ``NotFoundError`` (on the first ``__anext__``) if the run is unknown. If the run is
        purged while followed, the iteration ends.
        """

    @abstractmethod
    async def session_run(self, session_id: str) -> str | None:
        """The id of the session's run in progress, or ``None`` (what refuses deleting or
        clearing a busy session)."""

    # -- cancellation ------------------------------------------------------------------------

    @abstractmethod
    async def request_cancel(self, run_id: str) -> bool:
        """Ask a run in progress to stop (``cancel_requested``); ``False`` if it has ended.
        Asking twice is harmless. ``NotFoundError`` if unknown."""

    @abstractmethod
    def watch_cancels(self, holder: str) -> AsyncIterator[str]:
        """The ids of runs held by ``holder`` whose cancellation is requested (from any
        process), as requests arrive: each at least once (a holder acts on each id once),
        including requests made before the call for runs still in progress. Ends when the
        store is closed."""

    # -- approvals --------------------------------------------------------------------------

    @abstractmethod
    async def answer_approval(self, run_id: str, call_id: str, approved: bool) -> bool:
        """Record the answer (``approved``) to the run's tool call ``call_id``, atomically:
        ``True`` if stored; ``False`` (nothing changes) if that call already has an answer
        or the run has ended. ``NotFoundError`` if the run is unknown. The store does not
        check that the call asked: the caller does, from the run's events."""

    @abstractmethod
    async def approval_answer(self, run_id: str, call_id: str) -> bool | None:
        """The answer recorded for the run's call ``call_id``, or ``None`` (none yet, or the
        run is unknown): what the holder polls while the call waits."""

    # -- retention ---------------------------------------------------------------------------

    @abstractmethod
    async def purge(
        self,
        *,
        max_age_seconds: float | None = None,
        max_count: int | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> int:
        """Remove finished runs and their events: finished before ``now - max_age_seconds``,
        then the oldest-finished beyond ``max_count``, then the oldest-finished until the
        remaining finished runs' ``event_bytes`` sum to at most ``max_bytes``. ``None``: no
        bound of that kind. Runs in progress are never removed. The number removed."""
