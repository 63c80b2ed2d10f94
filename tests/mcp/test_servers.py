"""The tools of real MCP servers: mcp-server-time over stdio, our own over stdio and HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest
from chat_shell import ToolError
from chat_shell_mcp import McpTool, McpToolset
from mcp_support import children, our_stdio_server, time_server, toolset


def by_name(tools: McpToolset) -> dict[str, McpTool]:
    found = {}
    for made in tools.tools():
        assert isinstance(made, McpTool)
        found[made.name] = made
    return found


async def test_time_server_tools_are_listed_with_their_schema() -> None:
    tools = toolset(time=time_server())
    await tools.open()
    try:
        found = by_name(tools)
        assert sorted(found) == ["time_convert_time", "time_get_current_time"]
        current = found["time_get_current_time"]
        assert current.remote_name == "get_current_time"
        assert current.parameters["required"] == ["timezone"]
        assert current.schema()["function"]["parameters"] == current.parameters
        assert current.requires_approval  # MCP tools ask first unless configured otherwise
        assert "time zone" in current.description.lower() or "timezone" in current.description
    finally:
        await tools.aclose()


async def test_time_server_call_and_error() -> None:
    tools = toolset(time=time_server())
    await tools.open()
    try:
        current = by_name(tools)["time_get_current_time"]
        answer = json.loads(await current.run({"timezone": "Europe/Paris"}))
        assert answer["timezone"] == "Europe/Paris"
        assert answer["datetime"].endswith(("+01:00", "+02:00"))
        with pytest.raises(ToolError, match="Nowhere/Land"):
            await current.run({"timezone": "Nowhere/Land"})
        with pytest.raises(ToolError, match="invalid arguments for time_get_current_time"):
            await current.run({"zone": "UTC"})
    finally:
        await tools.aclose()


async def test_a_stdio_server_is_one_process_until_aclose() -> None:
    before = len(children())
    tools = toolset(time=time_server())
    assert len(children()) == before  # nothing starts before open
    await tools.open()
    assert len(children()) == before + 1
    await tools.aclose()
    assert len(children()) == before


async def test_allow_and_deny_patterns_and_approval_per_tool() -> None:
    tools = toolset(
        ours=our_stdio_server(
            tools=["e*", "a*", "fail"],
            exclude_tools=["add"],
            tool_approval={"echo": False},
        )
    )
    await tools.open()
    try:
        found = by_name(tools)
        assert sorted(found) == ["ours_echo", "ours_fail"]
        assert not found["ours_echo"].requires_approval
        assert found["ours_fail"].requires_approval
    finally:
        await tools.aclose()


async def test_a_crashed_server_is_a_tool_error_then_starts_again() -> None:
    tools = toolset(ours=our_stdio_server())
    await tools.open()
    try:
        pid_tool = by_name(tools)["ours_pid"]
        first = int(await pid_tool.run({}))
        [server] = [child for child in children() if child.pid == first]
        server.kill()
        server.wait(10)
        with pytest.raises(ToolError, match=r"stopped unexpectedly.*started again on the next"):
            await pid_tool.run({})
        assert tools.status()[0].state == "failed"
        second = int(await pid_tool.run({}))
        assert second != first
        assert tools.status()[0].state == "running"
    finally:
        await tools.aclose()


async def test_a_call_cancelled_mid_way_leaves_no_process() -> None:
    before = len(children())
    tools = toolset(ours=our_stdio_server())
    await tools.open()
    found = by_name(tools)
    call = asyncio.ensure_future(found["ours_hang"].run({}))
    await asyncio.sleep(0.5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await found["ours_echo"].run({"text": "still here"}) == "still here"
    await tools.aclose()
    assert len(children()) == before


async def test_a_server_that_cannot_start_is_left_out_with_a_warning() -> None:
    tools = toolset(
        gone={"command": "/nonexistent/mcp-server"},
        time=time_server(),
    )
    await tools.open()
    try:
        assert sorted(by_name(tools)) == ["time_convert_time", "time_get_current_time"]
        [warning] = tools.warnings
        assert warning.startswith("MCP server gone could not start")
        status = {s.name: s for s in tools.status()}
        assert status["gone"].state == "failed"
        assert status["time"].state == "running"
    finally:
        await tools.aclose()


async def test_a_server_that_does_not_answer_times_out_at_start_up() -> None:
    silent = {"command": "sleep", "args": ["600"], "startup_timeout": 1}
    tools = toolset(silent=silent)
    await tools.open()
    assert tools.warnings == ["MCP server silent did not start within 1 s; its tools are left out"]
    await tools.aclose()


async def test_http_server_call_structured_result_and_error(http_server: str) -> None:
    tools = toolset(web={"url": http_server})
    await tools.open()
    try:
        found = by_name(tools)
        assert {"web_echo", "web_add", "web_fail", "web_hang"} <= set(found)
        assert await found["web_echo"].run({"text": "héllo"}) == "héllo"
        assert json.loads(await found["web_add"].run({"numbers": [1, 2, 3]})) == {
            "total": 6,
            "terms": 3,
        }
        with pytest.raises(ToolError, match="boom"):
            await found["web_fail"].run({"reason": "boom"})
    finally:
        await tools.aclose()


async def test_output_is_capped(http_server: str) -> None:
    tools = toolset(web={"url": http_server, "max_output_chars": 100})
    await tools.open()
    try:
        text = await by_name(tools)["web_big"].run({"size": 5000})
        assert text == "x" * 100 + "\n… [output truncated: 4900 more characters]"
    finally:
        await tools.aclose()


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_list_changed_refreshes_the_tools(transport: str, http_server: str) -> None:
    server: dict[str, object] = our_stdio_server() if transport == "stdio" else {"url": http_server}
    tools = toolset(ours=server)
    await tools.open()
    try:
        name = f"sprout_{transport}"
        assert f"ours_{name}" not in by_name(tools)
        assert await by_name(tools)["ours_grow"].run({"name": name}) == f"added {name}"
        for _ in range(200):  # the refresh runs when the notice arrives
            if f"ours_{name}" in by_name(tools):
                break
            await asyncio.sleep(0.05)
        assert await by_name(tools)[f"ours_{name}"].run({}) == f"I am {name}"
    finally:
        await tools.aclose()
