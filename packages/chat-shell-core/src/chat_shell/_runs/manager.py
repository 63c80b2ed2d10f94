"""The runs of one process, kept through a ``RunStore``: the one place run state lives.

The process running a run holds it in memory (``AgentRun``) and serves its own followers from
there; every 50 ms (``flush_seconds``) it writes what is new of all its runs to the store in
one batch, renews their leases, and cancels the ones whose cancellation was asked through the
store. Any process opening the store ends the runs whose holder died (``interrupted``) and
stores their partial answers in the history, marked ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ChatShellError, SessionBusyError
from .._events import ChatEvent
from .._messages import Message
from .contract import RunInfo, RunStore
from .run import AgentRun

if TYPE_CHECKING:
    from .._agent.loop import ChatAgent, RunPlan
    from .._storage.contract import HistoryStorage

__all__ = ["INTERRUPTED_TOOL_RESULT", "RunManager", "store_interrupted"]

logger = logging.getLogger("chat_shell")

INTERRUPTED_TOOL_RESULT = "error: the tool call was interrupted before it finished"


async def store_interrupted(history: HistoryStorage, info: RunInfo) -> list[Message]:
    """Store what an interrupted run had said and not yet stored, marked ``interrupted``, so
    the next turn sends the model a valid conversation: a result for every tool call left
    without one, then the text of the model call in progress as an assistant message (an
    empty one if the session would otherwise end with the user's message)."""
    if not info.stores_history:
        return []
    messages = [
        Message(
            role="tool",
            content=INTERRUPTED_TOOL_RESULT,
            tool_call_id=call["id"],
            name=call.get("name"),
            metadata={"is_error": True, "status": "interrupted"},
        )
        for call in info.open_tool_calls
    ]
    last = await history.get_history(info.session_id, limit=1)
    ends_with_user = not messages and bool(last) and last[-1].role == "user"
    if info.step_content or ends_with_user:
        metadata: dict[str, Any] = {"status": "interrupted", "run_id": info.run_id}
        if info.model:
            metadata["model"] = info.model
        messages.append(Message(role="assistant", content=info.step_content, metadata=metadata))
    if messages:
        await history.append_messages(info.session_id, messages, owner=info.owner)
    return messages


def _holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RunManager:
    """Starts runs of a ``ChatAgent`` through ``store`` and keeps them until they end.

    ``start`` claims the run's session in the store (``SessionBusyError`` if it has a run
    in progress, in any process sharing the store). ``get``, ``follow`` and ``cancel`` work
    for any run of the store: from memory for this process's own runs, else through it.
    """

    def __init__(
        self,
        store: RunStore,
        history: HistoryStorage | None = None,
        *,
        lease_seconds: float = 20.0,
        flush_seconds: float = 0.05,
        retention_seconds: float | None = 3600.0,
        max_retained: int | None = 10_000,
        max_retained_bytes: int | None = 256 * 1024 * 1024,
        purge_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.history = history
        self.holder = _holder_name()
        self.lease_seconds = lease_seconds
        self.flush_seconds = flush_seconds
        self.retention_seconds = retention_seconds
        self.max_retained = max_retained
        self.max_retained_bytes = max_retained_bytes
        self.purge_seconds = purge_seconds
        self._live: dict[str, AgentRun] = {}
        self._flushed: dict[str, int] = {}  # run id -> last seq written to the store
        self._tasks: list[asyncio.Task[None]] = []
        self._writing = asyncio.Lock()  # a run's last batch never overtakes its previous one
        self._opened = False

    # -- opening and closing -----------------------------------------------------------------

    async def open(self) -> None:
        """Open the store, end the runs of dead holders, start the background work."""
        if self._opened:
            return
        await self.store.initialize()
        self._opened = True
        await self.sweep()
        await self.purge()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_loop()),
            loop.create_task(self._upkeep_loop()),
            loop.create_task(self._cancel_loop()),
        ]

    async def close(self) -> None:
        """Cancel this process's runs (their partial answers are stored), stop, close."""
        await self.cancel_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._opened:
            self._opened = False
            await self.store.close()

    # -- starting ----------------------------------------------------------------------------

    def launch(
        self, agent: ChatAgent, plan: RunPlan, *, metadata: dict[str, Any] | None = None
    ) -> AgentRun:
        """Start a run of ``plan`` at once; its session is claimed first, in its task.

        ``await run.claimed`` says whether the claim held (``SessionBusyError`` if not: the
        run then has no events and is not in the store).
        """
        run = agent.prepare(plan)
        run.owner = plan.owner
        run.holder = self.holder
        run.stores_history = plan.store
        run.metadata = dict(metadata or {})
        run.approval_answer = functools.partial(self.store.approval_answer, run.id)
        loop = asyncio.get_running_loop()
        run.claimed = loop.create_future()
        run.task = loop.create_task(self._run(agent, run, plan))
        return run

    async def start(
        self, agent: ChatAgent, plan: RunPlan, *, metadata: dict[str, Any] | None = None
    ) -> AgentRun:
        """``launch``, returning once the session is claimed (``SessionBusyError`` if not)."""
        run = self.launch(agent, plan, metadata=metadata)
        assert run.claimed is not None
        await asyncio.shield(run.claimed)
        return run

    async def _claim(self, run: AgentRun) -> None:
        info = run.summary()
        try:
            await self.store.create_run(info, lease_seconds=self.lease_seconds)
        except SessionBusyError as exc:
            # A holder that died still holds the session until a sweep ends its run.
            blocking = await self._lapsed(exc.run_id)
            if not blocking:
                raise
            await self.sweep()
            await self.store.create_run(info, lease_seconds=self.lease_seconds)

    async def _lapsed(self, run_id: str) -> bool:
        try:
            info = await self.store.get_run(run_id)
        except ChatShellError:
            return True
        return info.lease_expires_at is not None and info.lease_expires_at < time.time()

    async def _run(self, agent: ChatAgent, run: AgentRun, plan: RunPlan) -> None:
        claimed = run.claimed
        assert claimed is not None
        try:
            await self._claim(run)
        except Exception as exc:
            claimed.set_exception(exc)
            run.finish("failed")
            return
        except asyncio.CancelledError:
            claimed.cancel()
            run.finish("cancelled")
            raise
        claimed.set_result(None)
        self._live[run.id] = run
        self._flushed[run.id] = -1
        try:
            await agent.execute(run, plan)
        finally:
            await asyncio.shield(self._finalize(run))

    async def _finalize(self, run: AgentRun) -> None:
        try:
            # A flush writing this run's earlier events ends first; later flushes leave the run
            # (it is done), so its end is written outside the lock and many runs' ends can go
            # to the store together.
            async with self._writing:
                events = run.events[self._flushed.get(run.id, -1) + 1 :]
            finished = await self.store.finish_run(run.id, events, run.summary())
            if not finished:
                logger.warning("run %s had been ended by another process", run.id)
        except Exception:
            logger.exception("could not store the end of run %s", run.id)
        finally:
            self._live.pop(run.id, None)
            self._flushed.pop(run.id, None)

    # -- background work ---------------------------------------------------------------------

    async def flush(self) -> None:
        """Write what is new of every live run to the store, in one batch."""
        async with self._writing:
            batches: list[tuple[str, Sequence[ChatEvent], RunInfo | None]] = []
            flushed = self._flushed
            for run_id, run in list(self._live.items()):
                events = run.events
                last = flushed.get(run_id, -1)
                if len(events) - 1 > last and not run.done:
                    batches.append((run_id, events[last + 1 :], run.summary()))
            if batches:
                await self.store.append_batches(batches)
                for run_id, events, _ in batches:
                    flushed[run_id] = events[-1].seq

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                logger.exception("could not write run events to the run store")

    async def renew(self) -> None:
        """Extend the leases of this process's runs; stop those another process ended."""
        live = list(self._live)
        if not live:
            return
        kept = await self.store.renew_leases(self.holder, live, self.lease_seconds)
        for run_id in live:
            run = self._live.get(run_id)
            if run_id not in kept and run is not None and not run.done:
                logger.warning("run %s was ended by another process (lease lapsed)", run_id)
                run.lost = True
                run.cancel()

    async def sweep(self) -> list[RunInfo]:
        """End the runs whose holder died; store their partial answers in the history."""
        ended = await self.store.interrupt_expired()
        for info in ended:
            logger.warning("run %s of session %s: interrupted", info.run_id, info.session_id)
            if self.history is not None:
                try:
                    await store_interrupted(self.history, info)
                except ChatShellError as exc:
                    logger.warning("could not store run %s's partial answer: %s", info.run_id, exc)
        return ended

    async def purge(self) -> int:
        """Forget finished runs beyond the retention bounds (age, count, bytes)."""
        return await self.store.purge(
            max_age_seconds=self.retention_seconds,
            max_count=self.max_retained,
            max_bytes=self.max_retained_bytes,
        )

    async def _upkeep_loop(self) -> None:
        tick = max(self.lease_seconds / 4, 0.05)
        last_purge = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            for step in (self.renew, self.sweep):
                try:
                    await step()
                except Exception:
                    logger.exception("run store upkeep failed (%s)", step.__name__)
            if time.monotonic() - last_purge >= self.purge_seconds:
                last_purge = time.monotonic()
                try:
                    await self.purge()
                except Exception:
                    logger.exception("could not purge old runs")

    async def _cancel_loop(self) -> None:
        while True:
            try:
                async for run_id in self.store.watch_cancels(self.holder):
                    run = self._live.get(run_id)
                    if run is not None:
                        run.cancel()
                return
            except Exception:
                logger.exception("watching for cancellations failed; watching again")
                await asyncio.sleep(1.0)

    # -- any run of the store ----------------------------------------------------------------

    @property
    def active_count(self) -> int:
        """Runs this process is running."""
        return len(self._live)

    @property
    def live_runs(self) -> list[AgentRun]:
        return list(self._live.values())

    def local(self, run_id: str) -> AgentRun | None:
        """This process's run ``run_id`` while it runs (and until its end is stored)."""
        return self._live.get(run_id)

    async def get(self, run_id: str) -> RunInfo:
        """The run's summary (``NotFoundError`` if the store has no such run)."""
        run = self._live.get(run_id)
        return run.summary() if run is not None else await self.store.get_run(run_id)

    def follow(self, run_id: str, after: int = -1) -> AsyncIterator[ChatEvent]:
        """Its events with ``seq > after`` to its end: from memory if it runs here."""
        run = self._live.get(run_id)
        return run.follow(after) if run is not None else self.store.follow(run_id, after=after)

    async def cancel(self, run_id: str) -> bool:
        """Ask the run to stop, wherever it runs; ``False`` if it had ended."""
        run = self._live.get(run_id)
        if run is not None:
            return run.cancel()
        return await self.store.request_cancel(run_id)

    async def wait(self, run_id: str) -> RunInfo:
        """Wait for the run's end (wherever it runs) and return its final summary."""
        run = self._live.get(run_id)
        if run is not None:
            await run.wait()
            return run.summary()
        async for _ in self.store.follow(run_id):
            pass
        return await self.store.get_run(run_id)

    async def session_run(self, session_id: str) -> str | None:
        """The id of the session's run in progress (in any process), or ``None``."""
        return await self.store.session_run(session_id)

    async def ensure_idle(self, session_id: str) -> None:
        """``SessionBusyError`` if the session has a run in progress (deleting or clearing a
        session refuses then); a run whose holder died is ended first."""
        run_id = await self.store.session_run(session_id)
        if run_id is not None and await self._lapsed(run_id):
            await self.sweep()
            run_id = await self.store.session_run(session_id)
        if run_id is not None:
            raise SessionBusyError(session_id, run_id)

    async def cancel_all(self) -> None:
        """Cancel this process's runs and wait until their ends are stored."""
        runs = list(self._live.values())
        for run in runs:
            run.cancel()
        if runs:
            await asyncio.gather(*(run.wait() for run in runs), return_exceptions=True)

    async def drain(
        self, grace_seconds: float, on_timeout: Callable[[], None] | None = None
    ) -> None:
        """Let this process's runs finish for up to ``grace_seconds``, then cancel the rest
        (their partial answers are stored, marked cancelled) and wait for their ends."""
        runs = list(self._live.values())
        if runs and grace_seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_seconds):
                    await asyncio.gather(*(run.wait() for run in runs), return_exceptions=True)
        if on_timeout is not None and self._live:
            on_timeout()
        await self.cancel_all()
