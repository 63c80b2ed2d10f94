"""An MCP server of our own for the tests, written with the SDK's server side.

``python mcp_test_server.py stdio`` speaks over stdin/stdout; ``python mcp_test_server.py http
PORT`` serves streamable HTTP on 127.0.0.1:PORT at /mcp.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

server = MCPServer("chat-shell-test", log_level="CRITICAL")


class Sum(BaseModel):
    total: int
    terms: int


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def add(numbers: list[int]) -> Sum:
    """Add numbers up (a structured result)."""
    return Sum(total=sum(numbers), terms=len(numbers))


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ToolError(reason)


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.Event().wait()
    return "never"


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def big(size: int) -> str:
    """A text of ``size`` characters."""
    return "x" * size


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called ``name`` and tell the clients the tool list changed."""

    def added() -> str:
        return f"I am {name}"

    server.add_tool(added, name=name, description=f"a tool added at run time: {name}")
    await ctx.notify_tools_changed()
    session = getattr(ctx.request_context, "session", None)
    if session is not None and hasattr(session, "send_tool_list_changed"):
        await session.send_tool_list_changed()
    return f"added {name}"


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
