"""chat-shell-mcp: the tools of MCP servers as chat-shell tools.

Configured in ``config.toml`` (``[mcp_servers.NAME]``) or an ``mcpServers`` JSON file
(``mcp_config``); found by chat-shell through the ``chat_shell.toolsets`` entry point.
"""

from importlib.metadata import version

from ._config import McpServerConfig, expand_variables, load_servers
from ._names import tool_names
from ._tool import McpTool, result_text
from ._toolset import McpToolset, ServerStatus, toolset_from_settings

__version__ = version("chat-shell-mcp")

__all__ = [
    "McpServerConfig",
    "McpTool",
    "McpToolset",
    "ServerStatus",
    "__version__",
    "expand_variables",
    "load_servers",
    "result_text",
    "tool_names",
    "toolset_from_settings",
]
