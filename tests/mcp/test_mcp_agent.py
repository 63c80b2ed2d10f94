"""MCP tools through the agent, against the scripted OpenAI-compatible model server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from chat_shell import DirectChatInterface, InterfaceConfig, current_owner
from chat_shell.testing import Reply, ScriptedModelServer
from mcp_support import children, our_stdio_server, time_server, toolset


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as scripted:
        yield scripted


def interface(server: ScriptedModelServer, tools: Any, **options: Any) -> DirectChatInterface:
    config = InterfaceConfig(
        model="openai/scripted",
        api_key="sk-test",
        api_base=server.url,
        toolsets=[tools],
        retries=0,
        use_config_file=False,
        use_environment=False,
        **options,
    )
    return DirectChatInterface(config)


async def test_the_model_calls_an_approved_mcp_tool(server: ScriptedModelServer) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def approve(name: str, arguments: dict[str, Any]) -> bool:
        asked.append((name, arguments))
        return True

    server.add(Reply.tool("time_get_current_time", {"timezone": "Asia/Tokyo"}), Reply.text("ok"))
    async with interface(server, toolset(time=time_server()), approve=approve) as chat:
        output = await chat.chat("what time is it in Tokyo?")
    assert output.content == "ok"
    assert asked == [("time_get_current_time", {"timezone": "Asia/Tokyo"})]
    [call] = output.metadata["tool_calls"]
    assert json.loads(call["result"])["timezone"] == "Asia/Tokyo"
    offered = {tool["function"]["name"] for tool in server.requests[0]["tools"]}
    assert {"time_get_current_time", "time_convert_time"} <= offered
    # the tool's result went back to the model
    sent = server.requests[1]["messages"][-1]
    assert sent["role"] == "tool"
    assert "Asia/Tokyo" in sent["content"]


async def test_without_approval_a_call_is_not_approved(server: ScriptedModelServer) -> None:
    server.add(Reply.tool("time_get_current_time", {"timezone": "UTC"}), Reply.text("ok"))
    async with interface(server, toolset(time=time_server())) as chat:
        output = await chat.chat("time?")
    [call] = output.metadata["tool_calls"]
    assert call["error"].startswith("error: time_get_current_time was not approved")


async def test_a_declined_call_is_not_approved(server: ScriptedModelServer) -> None:
    async def decline(name: str, arguments: dict[str, Any]) -> bool:
        return False

    server.add(Reply.tool("time_get_current_time", {"timezone": "UTC"}), Reply.text("ok"))
    async with interface(server, toolset(time=time_server()), approve=decline) as chat:
        output = await chat.chat("time?")
    [call] = output.metadata["tool_calls"]
    assert call["error"] == (
        "error: time_get_current_time was not approved: the user declined to run it"
    )


async def test_a_tool_configured_without_approval_runs(server: ScriptedModelServer) -> None:
    server.add(Reply.tool("time_get_current_time", {"timezone": "UTC"}), Reply.text("ok"))
    tools = toolset(time=time_server(requires_approval=False))
    async with interface(server, tools) as chat:
        output = await chat.chat("time?")
    [call] = output.metadata["tool_calls"]
    assert json.loads(call["result"])["timezone"] == "UTC"


async def test_a_hung_call_times_out(server: ScriptedModelServer) -> None:
    server.add(Reply.tool("ours_hang", {}), Reply.text("gave up"))
    tools = toolset(ours=our_stdio_server(call_timeout=1, requires_approval=False))
    async with interface(server, tools) as chat:
        output = await chat.chat("hang")
        assert output.content == "gave up"
        [call] = output.metadata["tool_calls"]
        assert call["error"] == "error: ours_hang timed out after 1 s"
        # the server is still there for the next call
        server.add(Reply.tool("ours_echo", {"text": "again"}), Reply.text("done"))
        output = await chat.chat("echo")
        assert output.metadata["tool_calls"][0]["result"] == "again"


async def test_a_run_cancelled_mid_call_stops_and_leaves_no_process(
    server: ScriptedModelServer,
) -> None:
    before = len(children())
    server.add(Reply.tool("ours_hang", {}))
    tools = toolset(ours=our_stdio_server(requires_approval=False))
    async with interface(server, tools) as chat:
        stream = chat.stream_chat("hang")
        async for event in stream.events():
            if event.event_type.value == "tool_call":
                await asyncio.sleep(0.3)
                break
        output = await stream.cancel()
        assert output.status == "cancelled"
        assert len(children()) == before + 1  # the server runs until shutdown
    assert len(children()) == before


async def test_a_crash_mid_run_is_a_tool_error_and_the_next_call_restarts(
    server: ScriptedModelServer,
) -> None:
    tools = toolset(ours=our_stdio_server(requires_approval=False))
    server.add(Reply.tool("ours_pid", {}), Reply.text("noted"))
    async with interface(server, tools) as chat:
        first = int((await chat.chat("pid")).metadata["tool_calls"][0]["result"])
        for child in children():
            if child.pid == first:
                child.kill()
                child.wait(10)
        server.add(Reply.tool("ours_pid", {}), Reply.text("it broke"))
        output = await chat.chat("pid again")
        assert "stopped unexpectedly" in output.metadata["tool_calls"][0]["error"]
        server.add(Reply.tool("ours_pid", {}), Reply.text("back"))
        output = await chat.chat("and now?")
        assert int(output.metadata["tool_calls"][0]["result"]) not in (first, 0)


@pytest.mark.parametrize("shared", [False, True])
async def test_a_stdio_server_per_owner_unless_shared(shared: bool) -> None:
    tools = toolset(ours=our_stdio_server(shared=shared))
    await tools.open()
    try:
        [pid_tool] = [made for made in tools.tools() if made.name == "ours_pid"]
        pids: dict[str, set[int]] = {}
        for owner in ("key-a", "key-b", "key-a"):
            token = current_owner.set(owner)
            try:
                pids.setdefault(owner, set()).add(int(await pid_tool.run({})))
            finally:
                current_owner.reset(token)
        assert len(pids["key-a"]) == 1  # one owner keeps its server
        assert (pids["key-a"] == pids["key-b"]) is shared
    finally:
        await tools.aclose()
