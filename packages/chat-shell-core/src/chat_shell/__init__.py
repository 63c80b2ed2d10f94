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
    from ._agent import ChatAgent, ModelChoice, RunPlan
    from ._config import (
        ModelConfig,
        Settings,
        default_home,
        load_settings,
        make_private_folder,
        mask_secret,
    )
    from ._errors import (
        MODEL_ERROR_CODES,
        ChatShellError,
        ModelError,
        NotFoundError,
        StorageError,
        ToolError,
        UserError,
    )
    from ._events import (
        ChatEvent,
        CompleteData,
        ContentData,
        ErrorData,
        EventType,
        RunStatus,
        ThinkingData,
        ToolCallData,
        ToolResultData,
        Usage,
    )
    from ._interface import (
        ChatInput,
        ChatInterface,
        ChatOutput,
        DirectChatInterface,
        InterfaceConfig,
        StreamingChatOutput,
        TextChunk,
    )
    from ._json_storage import JSONStorage
    from ._memory_storage import MemoryStorage
    from ._messages import Message, Role, SessionInfo, ToolCall, validate_session_id
    from ._model_backend import (
        FinishPart,
        ModelBackend,
        ModelPart,
        ModelRequest,
        ReasoningDelta,
        TextDelta,
        ToolCallPart,
        UsagePart,
    )
    from ._model_router import PROVIDER_KEY_VARIABLES, ModelRouter, ModelSpec
    from ._plugins import available_storage, create_storage, storage_from_settings
    from ._remote_storage import RemoteHistoryStorage, RemoteStorage
    from ._run import AgentRun, PackedEvents, RunState
    from ._storage import HistoryStorage, StorageProvider
    from ._tools import ApprovalCallback, Tool, ToolFactory, ToolRegistry, tool
    from ._transfer import ImportReport, SessionImporter, export_sessions, import_sessions

# public name -> the private module that defines it
_LOCATIONS: dict[str, str] = {
    "AgentRun": "_run",
    "ApprovalCallback": "_tools",
    "ChatAgent": "_agent",
    "ChatEvent": "_events",
    "ChatInput": "_interface",
    "ChatInterface": "_interface",
    "ChatOutput": "_interface",
    "ChatShellError": "_errors",
    "CompleteData": "_events",
    "ContentData": "_events",
    "DirectChatInterface": "_interface",
    "ErrorData": "_events",
    "EventType": "_events",
    "FinishPart": "_model_backend",
    "HistoryStorage": "_storage",
    "ImportReport": "_transfer",
    "InterfaceConfig": "_interface",
    "JSONStorage": "_json_storage",
    "MemoryStorage": "_memory_storage",
    "Message": "_messages",
    "ModelBackend": "_model_backend",
    "ModelChoice": "_agent",
    "ModelConfig": "_config",
    "ModelError": "_errors",
    "ModelPart": "_model_backend",
    "ModelRequest": "_model_backend",
    "ModelRouter": "_model_router",
    "ModelSpec": "_model_router",
    "MODEL_ERROR_CODES": "_errors",
    "PROVIDER_KEY_VARIABLES": "_model_router",
    "NotFoundError": "_errors",
    "PackedEvents": "_run",
    "ReasoningDelta": "_model_backend",
    "RemoteHistoryStorage": "_remote_storage",
    "RemoteStorage": "_remote_storage",
    "Role": "_messages",
    "RunPlan": "_agent",
    "RunState": "_run",
    "RunStatus": "_events",
    "SessionImporter": "_transfer",
    "SessionInfo": "_messages",
    "Settings": "_config",
    "StorageError": "_errors",
    "StorageProvider": "_storage",
    "StreamingChatOutput": "_interface",
    "TextChunk": "_interface",
    "TextDelta": "_model_backend",
    "ThinkingData": "_events",
    "Tool": "_tools",
    "ToolCall": "_messages",
    "ToolCallData": "_events",
    "ToolCallPart": "_model_backend",
    "ToolError": "_errors",
    "ToolFactory": "_tools",
    "ToolRegistry": "_tools",
    "ToolResultData": "_events",
    "Usage": "_events",
    "UsagePart": "_model_backend",
    "UserError": "_errors",
    "available_storage": "_plugins",
    "create_storage": "_plugins",
    "default_home": "_config",
    "export_sessions": "_transfer",
    "import_sessions": "_transfer",
    "load_settings": "_config",
    "make_private_folder": "_config",
    "mask_secret": "_config",
    "tool": "_tools",
    "storage_from_settings": "_plugins",
    "validate_session_id": "_messages",
}

__all__ = [
    "MODEL_ERROR_CODES",
    "PROVIDER_KEY_VARIABLES",
    "AgentRun",
    "ApprovalCallback",
    "ChatAgent",
    "ChatEvent",
    "ChatInput",
    "ChatInterface",
    "ChatOutput",
    "ChatShellError",
    "CompleteData",
    "ContentData",
    "DirectChatInterface",
    "ErrorData",
    "EventType",
    "FinishPart",
    "HistoryStorage",
    "ImportReport",
    "InterfaceConfig",
    "JSONStorage",
    "MemoryStorage",
    "Message",
    "ModelBackend",
    "ModelChoice",
    "ModelConfig",
    "ModelError",
    "ModelPart",
    "ModelRequest",
    "ModelRouter",
    "ModelSpec",
    "NotFoundError",
    "PackedEvents",
    "ReasoningDelta",
    "RemoteHistoryStorage",
    "RemoteStorage",
    "Role",
    "RunPlan",
    "RunState",
    "RunStatus",
    "SessionImporter",
    "SessionInfo",
    "Settings",
    "StorageError",
    "StorageProvider",
    "StreamingChatOutput",
    "TextChunk",
    "TextDelta",
    "ThinkingData",
    "Tool",
    "ToolCall",
    "ToolCallData",
    "ToolCallPart",
    "ToolError",
    "ToolFactory",
    "ToolRegistry",
    "ToolResultData",
    "Usage",
    "UsagePart",
    "UserError",
    "__version__",
    "available_storage",
    "create_storage",
    "default_home",
    "export_sessions",
    "import_sessions",
    "load_settings",
    "make_private_folder",
    "mask_secret",
    "storage_from_settings",
    "tool",
    "validate_session_id",
]


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
