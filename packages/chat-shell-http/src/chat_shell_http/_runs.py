"""The run registry: which runs exist, who owns them, which sessions are busy, retention."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from chat_shell import AgentRun, ChatAgent, NotFoundError, RunPlan

from ._auth import Principal
from ._errors import ApiError

__all__ = ["RunRecord", "RunRegistry"]


@dataclass(slots=True)
class RunRecord:
    run: AgentRun
    owner: str | None
    cancel_on_disconnect: bool = False
    watchers: int = 0
    finished_at: float | None = field(default=None)
    client_session_id: str | None = None  # the id its client knows the session by

    @property
    def session_id(self) -> str:
        """The run's session, as its client knows it (stored with a key prefix, see Principal)."""
        return self.client_session_id or self.run.session_id


class RunRegistry:
    """Runs by id, owned by the key that started them.

    A run lives in its own task, independent of any connection. One run at a time per session:
    a second message to a busy session is refused with 409 ``session_busy`` (the client waits
    for the ``complete`` event, or cancels). Finished runs stay queryable for
    ``retention_seconds`` (and at most ``max_retained`` of them), then are forgotten.
    """

    def __init__(
        self,
        *,
        retention_seconds: float,
        max_retained: int,
        max_active: int,
    ) -> None:
        self.retention_seconds = retention_seconds
        self.max_retained = max_retained
        self.max_active = max_active
        self._active: dict[str, RunRecord] = {}
        self._finished: OrderedDict[str, RunRecord] = OrderedDict()
        self._busy: dict[str, str] = {}
        self.streams = 0  # open SSE responses, for health and leak tests

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def retained_count(self) -> int:
        return len(self._finished)

    def check_session_free(self, session_id: str) -> None:
        """409 if the stored session ``session_id`` has a run (only its own key gets here)."""
        if session_id in self._busy:
            raise ApiError(
                409,
                "session_busy",
                f"the session has a run in progress ({self._busy[session_id]}); wait for its "
                "end or cancel it",
                retryable=True,
                headers={"Retry-After": "1"},
            )

    def start(
        self,
        agent: ChatAgent,
        plan: RunPlan,
        principal: Principal,
        *,
        session_id: str | None = None,
        cancel_on_disconnect: bool = False,
    ) -> RunRecord:
        """Start a run of ``plan`` for ``principal`` (``session_id``: the session's id as the
        client knows it, default ``plan.session_id``); 409 if its session is busy."""
        self.purge()
        self.check_session_free(plan.session_id)
        if len(self._active) >= self.max_active:
            raise ApiError(
                503,
                "server_busy",
                f"the server is running {self.max_active} runs; try again shortly",
                retryable=True,
                headers={"Retry-After": "1"},
            )
        plan.owner = principal.owner
        run = agent.start(plan)
        record = RunRecord(run, principal.owner, cancel_on_disconnect, client_session_id=session_id)
        self._active[run.id] = record
        self._busy[plan.session_id] = run.id
        assert run.task is not None
        run.task.add_done_callback(lambda _: self._finish(record))
        return record

    def _finish(self, record: RunRecord) -> None:
        run = record.run
        self._active.pop(run.id, None)
        if self._busy.get(run.session_id) == run.id:
            del self._busy[run.session_id]
        record.finished_at = time.monotonic()
        if self.retention_seconds > 0:
            run.compact()  # thousands of retained runs must not cost thousands of objects each
            self._finished[run.id] = record
        self.purge()

    def purge(self) -> None:
        """Forget finished runs past their retention (or beyond the count limit)."""
        finished = self._finished
        horizon = time.monotonic() - self.retention_seconds
        while finished:
            run_id, record = next(iter(finished.items()))
            expired = record.finished_at is not None and record.finished_at < horizon
            if not expired and len(finished) <= self.max_retained:
                break
            del finished[run_id]

    def get(self, run_id: str, principal: Principal) -> RunRecord:
        """The run, if it exists and ``principal`` may see it; else ``NotFoundError``."""
        self.purge()
        record = self._active.get(run_id) or self._finished.get(run_id)
        if record is None or not principal.can_access(record.owner):
            raise NotFoundError(f"no run {run_id}")
        return record

    def session_run(self, session_id: str) -> str | None:
        """The id of the run in progress in ``session_id``, if any."""
        return self._busy.get(session_id)

    async def shutdown(self) -> None:
        """Cancel every run in progress and wait for their partial answers to be stored."""
        records = list(self._active.values())
        for record in records:
            record.run.cancel()
        if records:
            await asyncio.gather(*(record.run.wait() for record in records))
