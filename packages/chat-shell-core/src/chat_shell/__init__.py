"""chat-shell: an LLM agent that chats and acts through tools.

Package mode in five lines::

    from chat_shell import DirectChatInterface, InterfaceConfig

    async with DirectChatInterface(InterfaceConfig(model="openai/gpt-4o-mini")) as chat:
        reply = await chat.chat("What is 2 + 2?")
        print(reply.content)

Names are imported on first use, so ``import chat_shell`` stays cheap: a command that only
reads settings or history never pays for the agent, the model backends or the tools.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str
    from ._agent.loop import (
        ChatAgent as ChatAgent,
        ModelChoice as ModelChoice,
        RunPlan as RunPlan,
    )
    from ._config import (
        ModelConfig as ModelConfig,
        Settings as Settings,
        default_home as default_home,
        load_settings as load_settings,
    )
    from ._errors import (
        MODEL_ERROR_CODES as MODEL_ERROR_CODES,
        AmbiguousSessionError as AmbiguousSessionError,
        ChatShellError as ChatShellError,
        ModelError as ModelError,
        NotFoundError as NotFoundError,
        SessionBusyError as SessionBusyError,
        StorageError as StorageError,
        ToolError as ToolError,
        UserError as UserError,
    )
    from ._events import (
        ApprovalRequiredData as ApprovalRequiredData,
        ChatEvent as ChatEvent,
        CompleteData as CompleteData,
        ContentData as ContentData,
        ErrorData as ErrorData,
        EventType as EventType,
        RunStatus as RunStatus,
        ThinkingData as ThinkingData,
        ToolCallData as ToolCallData,
        ToolResultData as ToolResultData,
        Usage as Usage,
    )
    from ._interface import (
        ChatInput as ChatInput,
        ChatInterface as ChatInterface,
        ChatOutput as ChatOutput,
        DirectChatInterface as DirectChatInterface,
        InterfaceConfig as InterfaceConfig,
        StreamingChatOutput as StreamingChatOutput,
        TextChunk as TextChunk,
    )
    from ._messages import (
        Message as Message,
        Role as Role,
        SessionInfo as SessionInfo,
        ToolCall as ToolCall,
        validate_session_id as validate_session_id,
    )
    from ._models.backend import (
        FinishPart as FinishPart,
        ModelBackend as ModelBackend,
        ModelPart as ModelPart,
        ModelRequest as ModelRequest,
        ReasoningDelta as ReasoningDelta,
        TextDelta as TextDelta,
        ToolCallPart as ToolCallPart,
        UsagePart as UsagePart,
    )
    from ._models.router import (
        ModelRouter as ModelRouter,
        ModelSpec as ModelSpec,
    )
    from ._runs.contract import (
        RunInfo as RunInfo,
        RunStore as RunStore,
    )
    from ._runs.manager import RunManager as RunManager
    from ._runs.memory import MemoryRunStore as MemoryRunStore
    from ._runs.plugins import (
        available_run_stores as available_run_stores,
        create_run_store as create_run_store,
        run_store_from_settings as run_store_from_settings,
    )
    from ._runs.run import (
        AgentRun as AgentRun,
        RunState as RunState,
    )
    from ._storage.contract import (
        HistoryStorage as HistoryStorage,
        SearchHit as SearchHit,
        StorageProvider as StorageProvider,
    )
    from ._storage.json_files import JSONStorage as JSONStorage
    from ._storage.memory import MemoryStorage as MemoryStorage
    from ._storage.plugins import (
        available_storage as available_storage,
        create_storage as create_storage,
        storage_from_settings as storage_from_settings,
    )
    from ._storage.remote import (
        RemoteHistoryStorage as RemoteHistoryStorage,
        RemoteStorage as RemoteStorage,
    )
    from ._storage.titles import session_title as session_title
    from ._storage.transfer import (
        ImportReport as ImportReport,
        SessionImporter as SessionImporter,
        export_sessions as export_sessions,
        import_sessions as import_sessions,
    )
    from ._tools import (
        ApprovalCallback as ApprovalCallback,
        Tool as Tool,
        ToolFactory as ToolFactory,
        ToolRegistry as ToolRegistry,
        Toolset as Toolset,
        current_owner as current_owner,
        tool as tool,
    )
    from ._usage import (
        ModelUsage as ModelUsage,
        SessionUsage as SessionUsage,
        session_usage as session_usage,
    )

# The one name table: each public name, by the private module that defines it. ``__all__``,
# the lazy look-up below and the type checkers' view (the imports above, checked against this
# table by tests/core/test_public_api.py) all follow from it.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "_agent.loop": ("ChatAgent", "ModelChoice", "RunPlan"),
    "_config": ("ModelConfig", "Settings", "default_home", "load_settings"),
    "_errors": (
        "MODEL_ERROR_CODES",
        "AmbiguousSessionError",
        "ChatShellError",
        "ModelError",
        "NotFoundError",
        "SessionBusyError",
        "StorageError",
        "ToolError",
        "UserError",
    ),
    "_events": (
        "ApprovalRequiredData",
        "ChatEvent",
        "CompleteData",
        "ContentData",
        "ErrorData",
        "EventType",
        "RunStatus",
        "ThinkingData",
        "ToolCallData",
        "ToolResultData",
        "Usage",
    ),
    "_interface": (
        "ChatInput",
        "ChatInterface",
        "ChatOutput",
        "DirectChatInterface",
        "InterfaceConfig",
        "StreamingChatOutput",
        "TextChunk",
    ),
    "_storage.json_files": ("JSONStorage",),
    "_storage.memory": ("MemoryStorage",),
    "_messages": ("Message", "Role", "SessionInfo", "ToolCall", "validate_session_id"),
    "_models.backend": (
        "FinishPart",
        "ModelBackend",
        "ModelPart",
        "ModelRequest",
        "ReasoningDelta",
        "TextDelta",
        "ToolCallPart",
        "UsagePart",
    ),
    "_models.router": ("ModelRouter", "ModelSpec"),
    "_storage.plugins": ("available_storage", "create_storage", "storage_from_settings"),
    "_storage.remote": ("RemoteHistoryStorage", "RemoteStorage"),
    "_runs.run": ("AgentRun", "RunState"),
    "_runs.contract": ("RunInfo", "RunStore"),
    "_runs.manager": ("RunManager",),
    "_runs.memory": ("MemoryRunStore",),
    "_runs.plugins": ("available_run_stores", "create_run_store", "run_store_from_settings"),
    "_storage.contract": ("HistoryStorage", "SearchHit", "StorageProvider"),
    "_storage.titles": ("session_title",),
    "_tools": (
        "ApprovalCallback",
        "Tool",
        "ToolFactory",
        "ToolRegistry",
        "Toolset",
        "current_owner",
        "tool",
    ),
    "_storage.transfer": ("ImportReport", "SessionImporter", "export_sessions", "import_sessions"),
    "_usage": ("ModelUsage", "SessionUsage", "session_usage"),
}
_LOCATIONS = {name: module for module, names in _EXPORTS.items() for name in names}

# sorted as ruff sorts ``__all__``: CONSTANTS, then Classes, then functions
__all__ = sorted(
    [*_LOCATIONS, "__version__"], key=lambda n: (not n.isupper(), not n[0].isupper(), n)
)


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs ~20 ms: only when asked
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("chat-shell-core")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0.0.0"
        globals()[name] = value
        return value
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
