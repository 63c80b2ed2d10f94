"""The server's view of runs: core's ``RunManager`` (the run store) seen through API keys.

No run state lives here: a run is in the run store (and, while this process runs it, in its
``RunManager``). What is here is the edge's: who may see a run, the limit on runs at once,
whether the server still accepts runs (not while it shuts down), and the count of open
streams.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from chat_shell import AgentRun, ChatAgent, NotFoundError, RunInfo, RunManager, RunPlan

from ._auth import Principal
from ._errors import ApiError

__all__ = ["RunRecord", "RunRegistry"]


@dataclass(slots=True)
class RunRecord:
    """A run as one request sees it: its summary, and the live run if it runs here."""

    info: RunInfo
    run: AgentRun | None = None

    @property
    def live(self) -> AgentRun:
        """The run, which runs here (for a run this process just started)."""
        if self.run is None:
            raise RuntimeError(f"run {self.run_id} does not run in this process")
        return self.run

    @property
    def run_id(self) -> str:
        return self.info.run_id

    @property
    def owner(self) -> str | None:
        return self.info.owner

    @property
    def session_id(self) -> str:
        """The run's session, as its client knows it (stored with a key prefix, see Principal)."""
        return str(self.info.metadata.get("client_session_id") or self.info.session_id)

    @property
    def cancel_on_disconnect(self) -> bool:
        return bool(self.info.metadata.get("cancel_on_disconnect"))

    @property
    def done(self) -> bool:
        return self.run.done if self.run is not None else self.info.done

    @property
    def last_seq(self) -> int:
        return len(self.run.events) - 1 if self.run is not None else self.info.last_seq

    def current(self) -> RunInfo:
        """The summary as it is now (a live run's moves on)."""
        return self.run.summary() if self.run is not None else self.info


class RunRegistry:
    """Runs by id, owned by the key that started them, through the run store.

    One run at a time per session, in every process sharing the store: a second message to a
    busy session is refused with 409 ``session_busy`` (the client waits for the ``complete``
    event, or cancels). Finished runs stay queryable until the store's retention purges them.
    """

    def __init__(self, manager: RunManager, *, max_active: int) -> None:
        self.manager = manager
        self.max_active = max_active
        self.accepting = True
        self.streams = 0  # open SSE responses, for health and leak tests
        self.watchers: Counter[str] = Counter()  # open streams per run
        self.started_count = 0  # runs this process started (a refused request starts none)

    @property
    def active_count(self) -> int:
        return self.manager.active_count

    def check_accepting(self) -> None:
        if not self.accepting:
            raise ApiError(
                503,
                "shutting_down",
                "the server is shutting down; try again shortly (on another instance)",
                retryable=True,
                headers={"Retry-After": "5"},
            )

    async def check_session_free(self, session_id: str) -> None:
        """409 if the stored session ``session_id`` has a run (only its own key gets here)."""
        await self.manager.ensure_idle(session_id)

    async def start(
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
        self.check_accepting()
        if self.manager.active_count >= self.max_active:
            raise ApiError(
                503,
                "server_busy",
                f"the server is running {self.max_active} runs; try again shortly",
                retryable=True,
                headers={"Retry-After": "1"},
            )
        plan.owner = principal.owner
        metadata: dict[str, object] = {}
        if session_id is not None and session_id != plan.session_id:
            metadata["client_session_id"] = session_id
        if cancel_on_disconnect:
            metadata["cancel_on_disconnect"] = True
        run = await self.manager.start(agent, plan, metadata=metadata)
        self.started_count += 1
        return RunRecord(run.summary(), run)

    async def get(self, run_id: str, principal: Principal) -> RunRecord:
        """The run, if it exists and ``principal`` may see it; else ``NotFoundError``."""
        run = self.manager.local(run_id)
        info = run.summary() if run is not None else await self.manager.store.get_run(run_id)
        if not principal.can_access(info.owner):
            raise NotFoundError(f"no run {run_id}")
        return RunRecord(info, run)

    async def session_run(self, session_id: str) -> str | None:
        """The id of the run in progress in ``session_id``, if any (in any process)."""
        return await self.manager.session_run(session_id)

    async def shutdown(self, grace_seconds: float = 0.0) -> None:
        """Refuse new runs; let runs in progress finish for ``grace_seconds``, then cancel
        the rest and wait for their partial answers to be stored."""
        self.accepting = False
        await self.manager.drain(grace_seconds)
