"""MCP servers for the tests: ``mcp-server-time`` (from PyPI) and our own, over stdio and HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from mcp_support import TEST_SERVER, children

_KEPT: set[int] = set()  # the HTTP server's process, which outlives each test


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    """Our MCP server over streamable HTTP on 127.0.0.1; its URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(TEST_SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _KEPT.add(process.pid)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test MCP server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Every test ends with no server process of its own still running."""
    before = {child.pid for child in children()} | _KEPT
    yield
    deadline = time.monotonic() + 10
    while True:
        left = [child for child in children() if child.pid not in before | _KEPT]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"
