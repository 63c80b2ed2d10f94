"""What a running server holds: settings, storage, the agent interface, runs, auth, limits."""

from __future__ import annotations

import fnmatch

from chat_shell import (
    ChatInput,
    DirectChatInterface,
    HistoryStorage,
    InterfaceConfig,
    Message,
    NotFoundError,
    SessionInfo,
    Settings,
    StorageProvider,
    ToolRegistry,
    storage_from_settings,
)

from ._auth import Authenticator, Principal
from ._errors import ApiError
from ._limits import RateLimiter
from ._runs import RunRecord, RunRegistry
from ._schemas import ChatRequest
from ._settings import ServerSettings

__all__ = ["ServerState"]


class ServerState:
    """Everything the routes need, created by ``create_app`` and opened by its lifespan."""

    def __init__(
        self,
        settings: Settings,
        server: ServerSettings,
        storage: StorageProvider | None = None,
    ) -> None:
        self.settings = settings
        self.server = server
        self.storage = storage or storage_from_settings(settings)
        self.auth = Authenticator(server.key_hashes)
        self.limiter = RateLimiter(server.rate_limit_per_minute)
        self.runs = RunRegistry(
            retention_seconds=server.run_retention_seconds,
            max_retained=server.max_retained_runs,
            max_active=server.max_active_runs,
        )
        self.allowed_models = self._allowed_models()
        self._interface: DirectChatInterface | None = None

    def _allowed_models(self) -> list[str]:
        if self.server.allowed_models is not None:
            return list(self.server.allowed_models)
        settings = self.settings
        return list(
            dict.fromkeys(
                [settings.model, *settings.fallback_models, *settings.models, *settings.aliases]
            )
        )

    async def open(self) -> None:
        names = self.server.tools if self.server.tools is not None else self.settings.tools
        tools = ToolRegistry.default(self.settings).select(names)
        interface = DirectChatInterface(
            InterfaceConfig(tools=list(tools.values()), storage=self.storage),
            settings=self.settings,
        )
        await interface.initialize()
        self._interface = interface

    async def close(self) -> None:
        await self.runs.shutdown()
        if self._interface is not None:
            await self._interface.shutdown()
            self._interface = None
        else:
            await self.storage.close()

    @property
    def interface(self) -> DirectChatInterface:
        if self._interface is None:
            raise RuntimeError("the server state is not open")
        return self._interface

    @property
    def history(self) -> HistoryStorage:
        return self.storage.history

    def check_model(self, model: str | None) -> None:
        if model is None:
            return
        target = self.settings.aliases.get(model, model)
        for pattern in self.allowed_models:
            if fnmatch.fnmatchcase(model, pattern) or fnmatch.fnmatchcase(target, pattern):
                return
        raise ApiError(
            400,
            "model_not_allowed",
            f"model {model!r} is not offered by this server (allowed: "
            f"{', '.join(self.allowed_models) or 'none'})",
        )

    async def session_for(self, session_id: str, principal: Principal) -> SessionInfo:
        """The session if ``principal`` may see it; ``NotFoundError`` otherwise."""
        info = await self.history.get_session(session_id)
        if not principal.can_access(info.owner):
            raise NotFoundError(f"no session {session_id}")
        return info

    async def start_run(self, request: ChatRequest, principal: Principal) -> RunRecord:
        """Validate a chat request and start its run (nothing is stored if it is refused)."""
        *earlier, last = request.messages
        if last.role != "user":
            raise ApiError(400, "bad_request", "the last message must come from the user")
        self.check_model(request.model)
        turn = ChatInput(
            message=last.content,
            session_id=request.session_id,
            model=request.model,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            tools=request.tools,
        )
        plan = self.interface.plan(turn, owner=principal.owner)
        if request.session_id is not None:
            self.runs.check_session_free(plan.session_id)
            try:
                info: SessionInfo | None = await self.history.get_session(plan.session_id)
            except NotFoundError:
                info = None  # a new session, created by the run
            if info is not None and not principal.can_access(info.owner):
                raise NotFoundError(f"no session {plan.session_id}")
        if earlier:
            plan.new_messages = [
                *(Message(role=m.role, content=m.content) for m in earlier),
                *plan.new_messages,
            ]
        return self.runs.start(
            self.interface.agent,
            plan,
            principal,
            cancel_on_disconnect=request.cancel_on_disconnect,
        )
