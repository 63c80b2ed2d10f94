"""The configured MCP servers as one ``Toolset``: started on open, their tools as ours."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chat_shell import Settings, Tool, ToolError, Toolset, current_owner

from ._config import McpServerConfig, load_servers
from ._connection import Connection
from ._names import tool_names
from ._tool import McpTool

if TYPE_CHECKING:
    import mcp_types

__all__ = ["McpToolset", "ServerStatus", "toolset_from_settings"]

logger = logging.getLogger("chat_shell.mcp")


@dataclass
class ServerStatus:
    """What ``chat-shell mcp`` shows of a server."""

    name: str
    transport: str
    state: str
    error: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)


class McpToolset(Toolset):
    """The tools of MCP servers.

    ``open()`` starts every enabled server at once (each within its ``startup_timeout``) and
    lists its tools; a server that cannot start is left out with a warning, the others work.
    A crashed server's call is a tool error, and the next call starts it again. A server that
    sends ``tools/list_changed`` is listed again. ``allow`` narrows the tools to those named
    (chat-shell names or ``fnmatch`` patterns of them). On a server with API keys, a server
    that is not ``shared`` gets one connection (one process, for stdio) per key, started on
    that key's first call; the tool list comes from the first connection.
    """

    name = "mcp"

    def __init__(
        self, servers: dict[str, McpServerConfig], *, allow: Iterable[str] | None = None
    ) -> None:
        super().__init__()
        self.servers = servers
        if allow is not None:
            self.allow = list(allow)
        self._connections: dict[tuple[str, str | None], Connection] = {}
        self._tools: dict[str, list[McpTool]] = {}
        self._names: dict[str, dict[str, str]] = {}
        self._opened = False

    # -- the Toolset contract ------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self.warnings = []
        enabled = [name for name, config in self.servers.items() if config.enabled]
        results = await asyncio.gather(
            *(self._refresh(name, start=True) for name in enabled), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                message = result.message if isinstance(result, ToolError) else str(result)
                self.warnings.append(f"{message}; its tools are left out")

    def tools(self) -> list[Tool]:
        chosen: list[Tool] = []
        for server in self.servers:
            for made in self._tools.get(server, []):
                if self.allow is None or any(fnmatch.fnmatchcase(made.name, p) for p in self.allow):
                    chosen.append(made)
        return chosen

    async def aclose(self) -> None:
        connections = list(self._connections.values())
        await asyncio.gather(*(c.stop() for c in connections), return_exceptions=True)
        self._opened = False

    # -- connections ---------------------------------------------------------------------------

    def _connection(self, server: str, owner: str | None) -> Connection:
        config = self.servers[server]
        key = (server, None if config.is_shared else owner)
        found = self._connections.get(key)
        if found is None:
            listing = key[1] is None

            async def changed() -> None:
                try:
                    await self._refresh(server)
                except Exception as exc:
                    logger.warning("MCP server %s: listing its tools again failed: %s", server, exc)

            found = Connection(server, config, on_tools_changed=changed if listing else None)
            self._connections[key] = found
        return found

    async def _refresh(self, server: str, *, start: bool = False) -> None:
        """List the server's tools again (starting it first when asked) and rebuild them."""
        connection = self._connection(server, None)
        if start:
            await connection.start()
        listed = await connection.list_tools()
        self._build(server, listed)

    def _build(self, server: str, listed: list[mcp_types.Tool]) -> None:
        config = self.servers[server]
        offered = [tool for tool in listed if config.offers(tool.name)]
        taken = {
            made.name
            for other, made_list in self._tools.items()
            if other != server
            for made in made_list
        }
        names = tool_names(server, [tool.name for tool in offered], taken)
        self._names[server] = names

        async def call(remote: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
            return await self._call(server, remote, arguments)

        self._tools[server] = [
            McpTool(
                name=names[tool.name],
                server=server,
                remote_name=tool.name,
                description=tool.description or tool.title or "",
                parameters=dict(tool.input_schema) or {"type": "object", "properties": {}},
                call=call,
                timeout=config.call_timeout,
                max_output_chars=config.max_output_chars,
                requires_approval=config.needs_approval(tool.name),
            )
            for tool in offered
        ]

    async def _call(
        self, server: str, remote: str, arguments: dict[str, Any]
    ) -> mcp_types.CallToolResult:
        connection = self._connection(server, current_owner.get())
        if connection.state != "running":
            await connection.start()  # first use by this key, or again after a crash
        return await connection.call_tool(remote, arguments)

    # -- what `chat-shell mcp` shows -----------------------------------------------------------

    def status(self) -> list[ServerStatus]:
        shown: list[ServerStatus] = []
        for name, config in self.servers.items():
            connection = self._connections.get((name, None))
            if not config.enabled:
                state, error = "disabled", None
            elif connection is None:
                state, error = "stopped", None
            else:
                state, error = connection.state, connection.error
            tools = [
                {
                    "name": made.name,
                    "mcp_name": made.remote_name,
                    "requires_approval": made.requires_approval,
                    "description": made.description,
                }
                for made in self._tools.get(name, [])
            ]
            shown.append(ServerStatus(name, config.transport, state, error, tools))
        return shown


def toolset_from_settings(settings: Settings) -> McpToolset | None:
    """The ``chat_shell.toolsets`` entry point: the configured servers, or ``None``."""
    servers = load_servers(settings)
    return McpToolset(servers) if servers else None
