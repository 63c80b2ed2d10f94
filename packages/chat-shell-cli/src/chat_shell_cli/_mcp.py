"""``chat-shell mcp``: the configured MCP servers, their state and their tools."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from chat_shell import load_settings

from ._exit import EXIT_FAILURE, EXIT_OK, CLIError

if TYPE_CHECKING:
    from chat_shell_mcp import McpToolset

INSTALL_HINT = "MCP servers need chat-shell-mcp: pip install chat-shell-mcp"


def mcp(*, json_output: bool, start: bool) -> int:
    try:
        from chat_shell_mcp import McpToolset, load_servers
    except ImportError:
        raise CLIError(INSTALL_HINT) from None
    settings = load_settings()
    servers = load_servers(settings)
    toolset = McpToolset(servers)
    return asyncio.run(_show(toolset, json_output=json_output, start=start))


async def _show(toolset: McpToolset, *, json_output: bool, start: bool) -> int:
    import logging

    # What a server said when it failed is shown below, not logged on top of it.
    library = logging.getLogger("chat_shell")
    if not library.handlers:
        library.addHandler(logging.NullHandler())
    if start:
        try:
            await toolset.open()
        finally:
            await toolset.aclose()
    shown = toolset.status()
    if json_output:
        body: list[dict[str, Any]] = []
        for status in shown:
            config = toolset.servers[status.name]
            item = dataclasses.asdict(status)
            item["target"] = config.url or " ".join([config.command or "", *config.args])
            item["shared"] = config.is_shared
            body.append(item)
        print(json.dumps({"servers": body}, indent=2))
    elif not shown:
        print("no MCP servers configured (add [mcp_servers.NAME] to config.toml, or mcp_config)")
    for status in [] if json_output else shown:
        config = toolset.servers[status.name]
        target = config.url or " ".join([config.command or "", *config.args])
        state = status.state
        if state == "stopped" and start:
            state = "ok"  # started, listed and stopped again
        print(f"{status.name} ({status.transport}: {target}) — {state}")
        if status.error:
            print(f"  error: {status.error}")
        for tool in status.tools:
            asks = " (asks first)" if tool["requires_approval"] else ""
            description = (tool["description"] or "").strip().splitlines()
            first = f"  {description[0]}" if description else ""
            print(f"  {tool['name']}{asks}{first}")
    failed = any(status.state == "failed" for status in shown)
    return EXIT_FAILURE if failed else EXIT_OK
