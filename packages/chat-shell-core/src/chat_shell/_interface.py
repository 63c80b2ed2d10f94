"""Package mode: ``DirectChatInterface`` runs the agent in your own async code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pydantic import BaseModel, Field

from ._agent.loop import ChatAgent, ModelChoice, RunPlan
from ._config import Settings, load_settings, with_overrides
from ._errors import SessionBusyError, UserError
from ._events import ChatEvent, EventType, Usage
from ._messages import Message, SessionInfo, validate_session_id
from ._models.backend import ModelBackend
from ._models.router import ModelRouter, ModelSpec
from ._runs.contract import RunStore
from ._runs.manager import RunManager
from ._runs.plugins import available_run_stores, create_run_store
from ._runs.run import AgentRun
from ._storage.contract import SearchHit, StorageProvider
from ._storage.plugins import create_storage
from ._tools import ApprovalCallback, Tool, ToolRegistry, Toolset
from ._usage import SessionUsage, session_usage

__all__ = [
    "ChatInput",
    "ChatInterface",
    "ChatOutput",
    "DirectChatInterface",
    "InterfaceConfig",
    "StreamingChatOutput",
    "TextChunk",
]

logger = logging.getLogger("chat_shell")


class ChatInput(BaseModel):
    """One user turn, with optional per-request choices."""

    message: str
    session_id: str | None = None
    context: list[Message] = Field(
        default_factory=list,
        description="extra messages placed before the history for this turn only (not stored)",
    )
    model: str | None = None
    system_prompt: str | None = None
    tools: list[str] | None = Field(default=None, description="allow-list of tool names")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    store: bool = True


class ChatOutput(BaseModel):
    """The result of a turn.

    ``status`` is ``completed``, ``incomplete`` (``reason`` says why: a limit, or an answer
    cut off, ``finish_reason`` ``length``), ``failed`` (``error`` says why), ``cancelled``,
    or ``interrupted`` (the process running it stopped; seen only for runs of other processes).
    """

    content: str
    session_id: str
    run_id: str
    status: str
    model: str | None = None
    usage: Usage = Field(default_factory=lambda: Usage())
    error: dict[str, Any] | None = None
    reason: str | None = Field(default=None, description="why the run stopped short")
    finish_reason: str | None = Field(
        default=None, description="the model's own (stop, tool_calls, length, content_filter)"
    )
    warnings: list[str] = Field(default_factory=list, description="e.g. fallbacks left out")
    messages_sent: int | None = Field(
        default=None, description="messages in the last model request (None: none was made)"
    )
    messages_dropped: int = Field(
        default=0,
        description="messages of the conversation that request left out to fit the model's "
        "context window (they stay stored)",
    )
    messages_summarized: int = Field(
        default=0, description="of those, how many a stored summary stood for"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        """Whether the answer was cut off (the model hit its output token limit)."""
        return self.finish_reason in ("length", "max_tokens")

    @classmethod
    def from_run(cls, run: AgentRun) -> ChatOutput:
        return cls(
            content=run.content,
            session_id=run.session_id,
            run_id=run.id,
            status=run.state,
            model=run.model,
            usage=Usage(**run.usage),
            error=run.error,
            reason=run.reason,
            finish_reason=run.finish_reason,
            warnings=list(run.warnings),
            messages_sent=run.messages_sent,
            messages_dropped=run.messages_dropped,
            messages_summarized=run.messages_summarized,
            metadata={
                "tool_calls": list(run.tool_calls),
                "events": len(run.events),
                "latency_ms": round(((run.finished_at or 0) - (run.started_at or 0)) * 1000, 1),
            },
        )


class TextChunk(str):
    """A piece of the answer's text, as ``async for`` over a ``StreamingChatOutput`` gives it.

    It *is* the text (a ``str``: ``print(text, end="")``, ``"".join(chunks)``), and carries
    ``.chunk`` (the same text as a plain ``str``) and ``.event`` (the ``content`` event it
    came from: ``seq``, ``run_id``, ``session_id``, ``timestamp``).
    """

    event: ChatEvent

    def __new__(cls, text: str, event: ChatEvent) -> TextChunk:
        made = super().__new__(cls, text)
        made.event = event
        return made

    def __getnewargs__(self) -> tuple[str, ChatEvent]:  # type: ignore[override]
        return (self.chunk, self.event)  # copy and pickle rebuild it from both

    @property
    def chunk(self) -> str:
        """The text as a plain ``str``."""
        return str.__str__(self)


class StreamingChatOutput:
    """A turn in progress.

    ``async for text in stream`` gives the answer's text chunks (``TextChunk``: a ``str``
    with ``.chunk`` and ``.event``); ``stream.events()`` gives every
    ``ChatEvent`` (thinking, tool calls, results, errors, completion); ``await stream.output()``
    waits for the final ``ChatOutput``. Leaving an ``async with`` block (or ``cancel()``)
    before the end stops the run; what was said so far is stored, marked cancelled.
    """

    def __init__(self, run: AgentRun) -> None:
        self.run = run

    @property
    def session_id(self) -> str:
        return self.run.session_id

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def warnings(self) -> list[str]:
        """What the caller should know before the answer (e.g. fallback models left out)."""
        return self.run.warnings

    def __aiter__(self) -> AsyncIterator[TextChunk]:
        return self._text()

    async def _text(self) -> AsyncIterator[TextChunk]:
        make = str.__new__  # one per token: skips TextChunk.__new__'s Python frame (~1 µs)
        async for event in self.events():
            if event.event_type is EventType.CONTENT:
                chunk = make(TextChunk, event.data["delta"])
                chunk.event = event
                yield chunk

    async def started(self) -> None:
        """Wait until the run has claimed its session: ``SessionBusyError`` if another run
        (of this process or any other sharing the run store) is in progress there."""
        if self.run.claimed is not None:
            await asyncio.shield(self.run.claimed)

    async def events(self, after: int = -1) -> AsyncIterator[ChatEvent]:
        """The run's events from ``seq > after``; cancels the run if the reader is cancelled.

        ``SessionBusyError`` first if the session has another run in progress."""
        await self.started()
        try:
            async for event in self.run.follow(after):
                yield event
        except BaseException:
            self.run.cancel()
            raise

    async def output(self) -> ChatOutput:
        """Wait for the end; ``SessionBusyError`` if the session had another run."""
        await self.started()
        await self.run.wait()
        return ChatOutput.from_run(self.run)

    async def cancel(self) -> ChatOutput:
        """Stop the run and return what it had produced."""
        self.run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.started()
        await self.run.wait()
        return ChatOutput.from_run(self.run)

    async def __aenter__(self) -> StreamingChatOutput:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.run.done:
            with contextlib.suppress(SessionBusyError):
                await self.cancel()


@dataclass
class InterfaceConfig:
    """Choices for a ``DirectChatInterface``; what is given here wins over the settings.

    ``None`` means: take it from the settings — those passed as ``settings=``, or else those
    loaded from the ``CHAT_SHELL_*`` environment, then ``config.toml`` in ``home``, then the
    defaults (``use_config_file``/``use_environment`` turn those sources off). ``api_base`` and
    ``api_key`` are for ``model`` and win over its ``[models."…"]`` table. ``token_budget``,
    ``tools``, ``approve``, ``approval_timeout`` and ``storage`` are the interface's own: no
    setting stands for them (history is in memory unless ``storage`` says otherwise, whatever
    ``settings.storage`` is).
    """

    model: str | ModelBackend | None = None
    fallback_models: list[str] | None = None
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_iterations: int | None = None
    tool_timeout: float | None = None
    run_timeout: float | None = None
    token_budget: int | None = None
    retries: int | None = None
    context: str | None = None  # "drop", "summarize" or "off" (see Settings.context)
    # Tool objects, plain functions, or names of registered tools (built-ins and plugins).
    tools: Sequence[Tool | Callable[..., Any] | str] = ()
    # Sources of tools known only at run time (MCP servers): opened by initialize(), closed
    # by shutdown(); their current tools join ``tools`` on every turn.
    toolsets: Sequence[Toolset] = ()
    approve: ApprovalCallback | None = None
    # Without ``approve``: ask over the event stream (``approval_required``) and wait this
    # many seconds for an answer given through the run store (what the server does).
    approval_timeout: float | None = None
    storage: StorageProvider | str = "memory"
    storage_options: dict[str, Any] = field(default_factory=dict)
    # Where runs live: a RunStore, a registered name, or None: the run store of the storage's
    # name when one is installed and the storage is given by name, else memory.
    run_store: RunStore | str | None = None
    home: str | None = None
    use_config_file: bool = True
    use_environment: bool = True


# The fields of ``InterfaceConfig`` that are settings of the same name (``model`` too, when
# it is a name); the others are the interface's own.
_SETTINGS_FIELDS = (
    "fallback_models",
    "system_prompt",
    "temperature",
    "max_tokens",
    "max_iterations",
    "tool_timeout",
    "run_timeout",
    "retries",
    "context",
)


class ChatInterface(ABC):
    """What every way of talking to chat-shell offers."""

    @abstractmethod
    async def initialize(self) -> None: ...

    @abstractmethod
    async def chat(self, message: str | ChatInput) -> ChatOutput: ...

    @abstractmethod
    def stream_chat(self, message: str | ChatInput) -> StreamingChatOutput: ...

    @abstractmethod
    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]: ...

    @abstractmethod
    async def shutdown(self) -> None: ...

    async def __aenter__(self) -> ChatInterface:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()


class DirectChatInterface(ChatInterface):
    """The agent in your process.

    >>> async with DirectChatInterface(InterfaceConfig(model="openai/gpt-4o-mini")) as chat:
    ...     reply = await chat.chat("Hello!")
    """

    def __init__(self, config: InterfaceConfig | None = None, *, settings: Settings | None = None):
        self.config = config or InterfaceConfig()
        # The config's explicit values win over the settings, given or loaded.
        explicit = {
            "model": self.config.model if isinstance(self.config.model, str) else None,
            **{name: getattr(self.config, name) for name in _SETTINGS_FIELDS},
        }
        if settings is None:
            settings = load_settings(
                self.config.home,
                environ=None if self.config.use_environment else {},
                read_file=self.config.use_config_file,
                **explicit,
            )
        else:
            settings = with_overrides(settings, **explicit)
        self.settings = settings
        self.router = ModelRouter(settings, None if self.config.use_environment else {})
        self.tools: dict[str, Tool] = {}
        registry: ToolRegistry | None = None
        for item in self.config.tools:
            if isinstance(item, str):
                registry = registry or ToolRegistry.default(settings)
                tool = registry.get(item)
            else:
                tool = item if isinstance(item, Tool) else Tool(item)
            if tool.name in self.tools:
                raise UserError(f"two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        storage = self.config.storage
        self.storage = (
            create_storage(storage, **self.config.storage_options)
            if isinstance(storage, str)
            else storage
        )
        self.run_store = self._run_store(settings)
        self._agent: ChatAgent | None = None
        self._runs: RunManager | None = None
        self._warned: set[str] = set()  # fallbacks already warned about (logged once)

    def _run_store(self, settings: Settings) -> RunStore:
        chosen = self.config.run_store or settings.run_store
        if isinstance(chosen, RunStore):
            return chosen
        storage = self.config.storage
        if chosen is None and isinstance(storage, str) and storage in available_run_stores():
            return create_run_store(storage, **self.config.storage_options)
        if chosen is None or chosen == "memory":
            return create_run_store("memory")
        return create_run_store(chosen, **self.config.storage_options)

    async def initialize(self) -> None:
        if self._agent is None:
            await self.storage.initialize()
            opened: list[Toolset] = []
            try:
                for toolset in self.config.toolsets:
                    await toolset.open()
                    opened.append(toolset)
            except BaseException:
                for toolset in opened:
                    await toolset.aclose()
                await self.storage.close()
                raise
            runs = RunManager(
                self.run_store,
                self.storage.history,
                lease_seconds=self.settings.run_lease_seconds,
            )
            await runs.open()  # ends the runs of processes that died, stores their answers
            self._runs = runs
            self._agent = ChatAgent(self.storage.history)

    def available_tools(self) -> dict[str, Tool]:
        """The agent's tools now: its own plus the current tools of its toolsets."""
        tools = dict(self.tools)
        for toolset in self.config.toolsets:
            for tool in toolset.tools():
                tools.setdefault(tool.name, tool)
        return tools

    @property
    def agent(self) -> ChatAgent:
        if self._agent is None:
            raise UserError("the interface is not initialized: call `await chat.initialize()`")
        return self._agent

    @property
    def runs(self) -> RunManager:
        """The runs, through the run store: start, follow, cancel, wait (any process's)."""
        if self._runs is None:
            raise UserError("the interface is not initialized: call `await chat.initialize()`")
        return self._runs

    def resolve_models(self, requested: str | None = None) -> tuple[list[ModelChoice], list[str]]:
        """The models a turn tries, in order, and a warning for each fallback model that cannot
        be used (no credentials, litellm not installed …), which is left out.

        The model itself must be usable: ``UserError`` says what is missing.
        """
        configured = self.config.model
        if requested is None and isinstance(configured, ModelBackend):
            name = configured.model_name
            spec = ModelSpec(name=name, provider="custom", provider_model=name)
            return [ModelChoice(spec, configured)], []
        # The interface's api_base/api_key belong to its own model, not to a per-turn override.
        endpoint = (
            {} if requested else {"api_base": self.config.api_base, "api_key": self.config.api_key}
        )
        spec = self.router.resolve(requested or self.settings.model, **endpoint)
        choices = [ModelChoice(spec, self.router.backend(spec))]
        warnings = []
        for name in self.settings.fallback_models:
            try:
                spec = self.router.resolve(name)
                choices.append(ModelChoice(spec, self.router.backend(spec)))
            except UserError as exc:
                warning = f"fallback model {name} skipped: {exc.message}"
                warnings.append(warning)
                if name not in self._warned:
                    self._warned.add(name)
                    logger.warning("%s", warning)
        return choices, warnings

    def plan(self, message: str | ChatInput, *, owner: str | None = None) -> RunPlan:
        """The validated ``RunPlan`` of a turn (``UserError`` for bad input), for code that
        starts and tracks runs itself with ``interface.agent.start(plan)`` (the HTTP server)."""
        turn = ChatInput(message=message) if isinstance(message, str) else message
        if not turn.message.strip():
            raise UserError("the message is empty")
        session_id = validate_session_id(turn.session_id) if turn.session_id else str(uuid.uuid4())
        tools = self.available_tools() if self.config.toolsets else self.tools
        if turn.tools is not None:
            unknown = sorted(set(turn.tools) - set(tools))
            if unknown:
                known = ", ".join(sorted(tools)) or "none"
                raise UserError(f"unknown tools {', '.join(unknown)} (available: {known})")
            tools = {name: tools[name] for name in turn.tools}
        settings = self.settings
        models, warnings = self.resolve_models(turn.model)
        return RunPlan(
            session_id=session_id,
            new_messages=[Message(role="user", content=turn.message)],
            models=models,
            tools=tools,
            context=list(turn.context),
            system_prompt=turn.system_prompt or settings.system_prompt,
            temperature=turn.temperature if turn.temperature is not None else settings.temperature,
            max_tokens=turn.max_tokens or settings.max_tokens,
            max_iterations=settings.max_iterations,
            tool_timeout=settings.tool_timeout,
            run_timeout=settings.run_timeout,
            token_budget=self.config.token_budget,
            retries=settings.retries,
            store=turn.store,
            new_session=turn.session_id is None,
            approve=self.config.approve,
            approval_timeout=self.config.approval_timeout,
            owner=owner,
            warnings=warnings,
            context_mode=settings.context,
        )

    def stream_chat(self, message: str | ChatInput) -> StreamingChatOutput:
        """Start a turn and stream it. Raises ``UserError`` at once for bad input; a session
        with a run in progress raises ``SessionBusyError`` when the stream is read."""
        plan = self.plan(message)
        return StreamingChatOutput(self.runs.launch(self.agent, plan))

    async def chat(self, message: str | ChatInput) -> ChatOutput:
        """Run a turn to its end and return the output (``status`` says how it ended)."""
        return await self.stream_chat(message).output()

    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        await self.initialize()
        return await self.storage.history.get_history(session_id, limit)

    async def list_sessions(self, *, limit: int = 50, offset: int = 0) -> list[SessionInfo]:
        await self.initialize()
        return await self.storage.history.list_sessions(limit=limit, offset=offset)

    async def session_usage(self, session_id: str) -> SessionUsage:
        """What the session used, by model, priced where the local table knows the model."""
        await self.initialize()
        return await session_usage(self.storage.history, session_id)

    async def clear_history(self, session_id: str) -> None:
        """Remove the session's messages; ``SessionBusyError`` while it has a run in progress."""
        await self.initialize()
        await self.runs.ensure_idle(session_id)
        await self.storage.history.clear_history(session_id)

    async def delete_session(self, session_id: str) -> None:
        """Delete the session; ``SessionBusyError`` while it has a run in progress."""
        await self.initialize()
        await self.runs.ensure_idle(session_id)
        await self.storage.history.delete_session(session_id)

    async def truncate_history(self, session_id: str, keep: int) -> None:
        """Keep the session's first ``keep`` messages, remove the rest, in one step
        (``HistoryStorage.truncate_history``)."""
        await self.initialize()
        await self.storage.history.truncate_history(session_id, keep)

    async def find_session(self, id_or_prefix: str) -> SessionInfo:
        """The session with this id, or the one whose id starts with it
        (``HistoryStorage.find_session``)."""
        await self.initialize()
        return await self.storage.history.find_session(id_or_prefix)

    async def search(self, text: str, *, limit: int = 20) -> list[SearchHit]:
        """Messages holding every word of ``text`` (``HistoryStorage.search``)."""
        await self.initialize()
        return await self.storage.history.search(text, limit=limit)

    async def shutdown(self) -> None:
        """Cancel runs still going (their partial answers are stored), close storage and clients."""
        if self._runs is not None:
            await self._runs.close()
            self._runs = None
        await self.router.aclose()
        if self._agent is not None:
            for toolset in self.config.toolsets:
                await toolset.aclose()
            await self.storage.close()
            self._agent = None

    async def __aenter__(self) -> DirectChatInterface:
        await self.initialize()
        return self
