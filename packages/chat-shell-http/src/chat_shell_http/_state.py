"""What a running server holds: settings, storage, the agent interface, runs, auth, limits."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence

from chat_shell import (
    ChatInput,
    DirectChatInterface,
    HistoryStorage,
    InterfaceConfig,
    Message,
    NotFoundError,
    RunStore,
    SessionInfo,
    Settings,
    StorageProvider,
    ToolRegistry,
    Toolset,
    UserError,
    run_store_from_settings,
    storage_from_settings,
    validate_session_id,
)

from ._auth import Authenticator, Principal
from ._errors import ApiError
from ._limits import RateLimiter
from ._runs import RunRecord, RunRegistry
from ._schemas import ChatRequest
from ._settings import ServerSettings

__all__ = ["ServerState"]

logger = logging.getLogger("chat_shell_http")


class ServerState:
    """Everything the routes need, created by ``create_app`` and opened by its lifespan."""

    def __init__(
        self,
        settings: Settings,
        server: ServerSettings,
        storage: StorageProvider | None = None,
        run_store: RunStore | None = None,
    ) -> None:
        self.settings = settings
        self.server = server
        self.storage = storage or storage_from_settings(settings)
        # Runs follow the history: the run store of its backend when there is one (a given
        # storage object has none of its own: its runs stay in memory unless told otherwise).
        if run_store is None:
            follows = storage is None or settings.run_store is not None
            run_store = run_store_from_settings(settings) if follows else None
        self.run_store = run_store
        self.auth = Authenticator(server.key_hashes)
        self.limiter = RateLimiter(server.rate_limit_per_minute)
        self._runs: RunRegistry | None = None
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
        registry = ToolRegistry.default(self.settings)
        # MCP servers come only from the operator's configuration, never from a request. Names
        # the registry does not know are left to them (their tools' names, or patterns).
        toolsets = Toolset.installed(self.settings)
        if (self.settings.mcp_servers or self.settings.mcp_config) and not toolsets:
            logger.warning(
                "MCP servers are configured but chat-shell-mcp is not installed "
                "(pip install chat-shell-mcp); their tools are left out"
            )
        if names is not None and toolsets:
            others = [name for name in names if name not in registry]
            for toolset in toolsets:
                toolset.allow = others
            toolsets = [toolset for toolset in toolsets if others]
            names = [name for name in names if name in registry]
        tools = registry.select(names)
        interface = DirectChatInterface(
            InterfaceConfig(
                tools=list(tools.values()),
                toolsets=toolsets,
                storage=self.storage,
                run_store=self.run_store,
                approval_timeout=self.server.approval_timeout_seconds,
            ),
            settings=self.settings,
        )
        await interface.initialize()
        manager = interface.runs
        server = self.server
        manager.retention_seconds = server.run_retention_seconds
        manager.max_retained = server.max_retained_runs
        manager.max_retained_bytes = server.max_retained_run_bytes
        manager.purge_seconds = server.run_purge_seconds
        self._runs = RunRegistry(manager, max_active=server.max_active_runs)
        for toolset in toolsets:
            for warning in toolset.warnings:
                logger.warning("%s", warning)
        self._interface = interface

    @property
    def runs(self) -> RunRegistry:
        if self._runs is None:
            raise RuntimeError("the server state is not open")
        return self._runs

    async def close(self) -> None:
        if self._runs is not None:
            # `chat-shell serve` has drained already (SIGTERM: grace, then cancel); an app
            # stopped otherwise cancels what is left at once (partial answers stored).
            await self._runs.shutdown(0)
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

    async def _stored(self, stored_id: str) -> SessionInfo | None:
        try:
            return await self.history.get_session(stored_id)
        except NotFoundError:
            return None

    async def find_session(
        self, session_id: str, principal: Principal
    ) -> tuple[str, SessionInfo | None]:
        """Where the caller's session ``session_id`` is stored, and its info (``None``: the
        caller has no such session yet; another key's session of that id is not looked at).

        A key's session made before ids were per key (stored under its plain id) is still
        found by its owner.
        """
        validate_session_id(session_id)
        key = principal.session_key(session_id)
        if key == session_id:  # no API keys: ids as given
            return key, await self._stored(key)
        info = None if key is None else await self._stored(key)
        if key is not None and info is not None and principal.can_access(info.owner):
            return key, info
        earlier = await self._stored(session_id)
        if earlier is not None and principal.can_access(earlier.owner):
            return session_id, earlier
        if key is None:
            raise UserError(
                f"invalid session id: at most {principal.max_session_id} characters on a "
                "server with API keys"
            )
        if info is not None:  # someone's session took this prefixed id before ids were per key
            raise NotFoundError(f"no session {session_id}")
        return key, None

    async def session_for(self, session_id: str, principal: Principal) -> tuple[str, SessionInfo]:
        """The caller's session ``session_id``: where it is stored and its info; else
        ``NotFoundError`` (the same for another key's session as for a missing one)."""
        key, info = await self.find_session(session_id, principal)
        if info is None:
            raise NotFoundError(f"no session {session_id}")
        return key, info

    def visible(self, info: SessionInfo, principal: Principal) -> SessionInfo:
        """A stored session as the caller sees it: under its id, with its own owner label."""
        return info.model_copy(
            update={
                "id": principal.public_session_id(info.id),
                "owner": principal.visible_owner(info.owner),
            }
        )

    async def start_turn(
        self,
        turn: ChatInput,
        principal: Principal,
        *,
        seed: Sequence[Message] = (),
        cancel_on_disconnect: bool = False,
    ) -> RunRecord:
        """Validate a turn and start its run (nothing is stored if it is refused).

        ``turn.session_id`` is the session as the caller knows it (``None``: a new one);
        ``seed`` are messages stored before the turn's user message.
        """
        self.check_model(turn.model)
        session_id = turn.session_id
        if session_id is not None:
            self.runs.check_accepting()
            key, _ = await self.find_session(session_id, principal)
            await self.runs.check_session_free(key)
            turn = turn.model_copy(update={"session_id": key})
        plan = self.interface.plan(turn, owner=principal.owner)
        if session_id is None:  # a new session, its id made by core
            session_id = plan.session_id
            plan.session_id = principal.session_key(session_id) or session_id
        if seed:
            plan.new_messages = [*seed, *plan.new_messages]
        return await self.runs.start(
            self.interface.agent,
            plan,
            principal,
            session_id=session_id,
            cancel_on_disconnect=cancel_on_disconnect,
        )

    async def start_run(self, request: ChatRequest, principal: Principal) -> RunRecord:
        """Validate a chat request and start its run (nothing is stored if it is refused)."""
        *earlier, last = request.messages
        if last.role != "user":
            raise UserError("the last message must come from the user")
        turn = ChatInput(
            message=last.content,
            session_id=request.session_id,
            model=request.model,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            tools=request.tools,
        )
        return await self.start_turn(
            turn,
            principal,
            seed=[Message(role=m.role, content=m.content) for m in earlier],
            cancel_on_disconnect=request.cancel_on_disconnect,
        )
