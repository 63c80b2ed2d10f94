"""What the MCP tests share: the servers they start and a count of this process's children."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
from chat_shell import Settings
from chat_shell_mcp import McpToolset, load_servers

TEST_SERVER = Path(__file__).with_name("mcp_test_server.py")
TIME_SERVER = Path(sys.executable).with_name("mcp-server-time")


def children() -> list[psutil.Process]:
    """This process's live descendants (the stdio servers it started, and theirs)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def time_server(**options: object) -> dict[str, object]:
    return {"command": str(TIME_SERVER), "args": ["--local-timezone", "UTC"], **options}


def our_stdio_server(**options: object) -> dict[str, object]:
    return {"command": sys.executable, "args": [str(TEST_SERVER), "stdio"], **options}


def toolset(**servers: dict[str, object]) -> McpToolset:
    return McpToolset(load_servers(Settings(mcp_servers=servers), environ={}))
