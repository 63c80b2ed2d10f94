"""chat-shell: an LLM agent that chats and acts through tools.

Package mode in five lines::

    from chat_shell import DirectChatInterface, InterfaceConfig

    async with DirectChatInterface(InterfaceConfig(model="openai/gpt-4o-mini")) as chat:
        reply = await chat.chat("What is 2 + 2?")
        print(reply.content)
"""

from importlib.metadata import PackageNotFoundError, version

from ._agent import ChatAgent, ModelChoice, RunPlan
from ._config import ModelConfig, Settings, default_home, load_settings, mask_secret
from ._errors import ChatShellError, ModelError, NotFoundError, StorageError, ToolError, UserError
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
)
from ._json_storage import JSONStorage
from ._memory_storage import MemoryStorage
from ._messages import Message, Role, SessionInfo, ToolCall, validate_session_id
from ._model_backend import (
    ModelBackend,
    ModelPart,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallPart,
    UsagePart,
)
from ._model_router import ModelRouter, ModelSpec
from ._plugins import available_storage, create_storage
from ._run import AgentRun, RunState
from ._storage import HistoryStorage, StorageProvider
from ._tools import ApprovalCallback, Tool, ToolFactory, ToolRegistry, tool
from ._transfer import ImportReport, SessionImporter, export_sessions, import_sessions

try:
    __version__ = version("chat-shell-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
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
    "ReasoningDelta",
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
    "mask_secret",
    "tool",
    "validate_session_id",
]
