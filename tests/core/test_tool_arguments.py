"""Hostile tool-call arguments (deeply nested, huge) go back to the model as tool errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from chat_shell import (
    AgentRun,
    ChatAgent,
    DirectChatInterface,
    EventType,
    InterfaceConfig,
    JSONStorage,
    MemoryStorage,
    Message,
    ModelChoice,
    ModelSpec,
    RunPlan,
    StorageProvider,
    Tool,
)
from chat_shell._tools import MAX_ARGUMENTS_CHARS, MAX_ARGUMENTS_DEPTH
from chat_shell.testing import FakeModel, Reply, ScriptedModelServer

DEEP = 100_000


def nested(depth: int, kinds: str) -> Any:
    """A value nesting ``depth`` containers, cycling through ``kinds`` ("[" list, "{" dict)."""
    value: Any = 1
    for level in range(depth):
        value = [value] if kinds[level % len(kinds)] == "[" else {"k": value}
    return value


def deep_text(depth: int, kinds: str) -> str:
    """JSON text nesting ``depth`` containers (written out: json.dumps would recurse)."""
    opening = "".join("[" if kinds[i % len(kinds)] == "[" else '{"k": ' for i in range(depth))
    closing = "".join("]" if kinds[i % len(kinds)] == "[" else "}" for i in reversed(range(depth)))
    return opening + "1" + closing


TOO_DEEP = f"arguments are nested more than {MAX_ARGUMENTS_DEPTH} levels deep"
TOO_LONG = f"at most {MAX_ARGUMENTS_CHARS} are accepted"

HOSTILE = {
    # what a model can stream: unclosed openers (the decoder recurses before it finds the end)
    "arrays, unclosed": ("[" * DEEP, TOO_DEEP),
    "objects, unclosed": ('{"a":' * DEEP, TOO_DEEP),
    "mixed, unclosed": ('[{"a":' * (DEEP // 2), TOO_DEEP),
    # complete JSON: too deep for the decoder, inside a valid object
    "arrays in an object": ('{"value": ' + deep_text(DEEP, "[") + "}", TOO_DEEP),
    "objects in an object": ('{"value": ' + deep_text(DEEP, "{") + "}", TOO_DEEP),
    "mixed in an object": ('{"value": ' + deep_text(DEEP, "[{") + "}", TOO_DEEP),
    # decodable, but deeper than validation, storage and replay may go
    "900 arrays": ('{"value": ' + deep_text(900, "[") + "}", TOO_DEEP),
    "900 mixed": ('{"value": ' + deep_text(900, "{[") + "}", TOO_DEEP),
    "one level too deep": ('{"value": ' + deep_text(MAX_ARGUMENTS_DEPTH, "[{") + "}", TOO_DEEP),
    # huge, flat
    "a huge string": ('{"value": "' + "x" * 2 * MAX_ARGUMENTS_CHARS + '"}', TOO_LONG),
    "a huge array": ('{"value": [' + ",".join(["1"] * MAX_ARGUMENTS_CHARS) + "]}", TOO_LONG),
    "huge and deep": ("[" * (MAX_ARGUMENTS_CHARS + 1), TOO_LONG),
}

calls: list[Any] = []


def keep(value: Any) -> str:
    """Keep a value of any shape."""
    calls.append(value)
    return "kept"


def plan_for(model: FakeModel) -> RunPlan:
    spec = ModelSpec(name=model.model_name, provider="custom", provider_model="m")
    return RunPlan(
        session_id="s1",
        new_messages=[Message(role="user", content="go")],
        models=[ModelChoice(spec, model)],
        tools={"keep": Tool(keep)},
    )


@pytest.fixture(params=["memory", "json"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageProvider:
    provider: StorageProvider = (
        MemoryStorage() if request.param == "memory" else JSONStorage(tmp_path / "history")
    )
    await provider.initialize()
    calls.clear()
    return provider


def tool_results(run: AgentRun) -> list[dict[str, Any]]:
    return [e.data for e in run.events if e.event_type is EventType.TOOL_RESULT]


@pytest.mark.parametrize("arguments", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_arguments_go_back_to_the_model_as_a_tool_error(
    storage: StorageProvider,
    arguments: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    text, expected = arguments
    model = FakeModel(Reply.tool("keep", text), "sorry")
    with caplog.at_level(logging.WARNING, logger="chat_shell"):
        run = await ChatAgent(storage.history).start(plan_for(model)).wait()
    assert run.state == "completed", run.error
    assert run.error is None
    assert not caplog.records  # no traceback, no internal error
    [result] = tool_results(run)
    assert result["error"].startswith("error: keep: arguments ")
    assert expected in result["error"]
    assert calls == []  # the tool never ran
    # the model got the error and answered
    assert model.requests[1].messages[-1]["content"] == result["error"]
    assert run.content == "sorry"
    stored = await storage.history.get_history("s1")
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1].tool_calls is not None
    assert stored[1].tool_calls[0].arguments == {}
    assert stored[2].metadata["is_error"] is True


@pytest.mark.parametrize("kinds", ["[", "{", "[{", "{["])
async def test_arguments_at_the_depth_limit_reach_the_tool_and_replay(
    storage: StorageProvider, kinds: str
) -> None:
    value = nested(MAX_ARGUMENTS_DEPTH - 1, kinds)  # the arguments object is one more level
    model = FakeModel(Reply.tool("keep", {"value": value}), "kept it")
    run = await ChatAgent(storage.history).start(plan_for(model)).wait()
    assert run.state == "completed", run.error
    assert tool_results(run)[0]["result"] == "kept"
    assert calls == [value]
    sent = model.requests[1].messages[1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"value": value}
    stored = await storage.history.get_history("s1")
    assert stored[1].tool_calls is not None
    assert stored[1].tool_calls[0].arguments == {"value": value}


async def test_long_arguments_within_the_limit_reach_the_tool(storage: StorageProvider) -> None:
    value = "x" * (MAX_ARGUMENTS_CHARS - 100)
    model = FakeModel(Reply.tool("keep", {"value": value}), "kept it")
    run = await ChatAgent(storage.history).start(plan_for(model)).wait()
    assert tool_results(run)[0]["result"] == "kept"
    assert calls == [value]


async def test_deep_arguments_from_a_real_stream_are_a_tool_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole path: the OpenAI client streams the arguments from a scripted server."""
    with ScriptedModelServer() as server:
        server.add(Reply.tool("keep", "[" * DEEP))
        config = InterfaceConfig(
            model="openai/scripted",
            api_base=server.url,
            api_key="sk-test",
            tools=[keep],
            retries=0,
            use_config_file=False,
            use_environment=False,
        )
        with caplog.at_level(logging.WARNING, logger="chat_shell"):
            async with DirectChatInterface(config) as chat:
                output = await chat.chat("go")
        assert output.status == "completed"
        assert not caplog.records
        tool_message = server.requests[1]["messages"][-1]
        assert tool_message["role"] == "tool"
        assert tool_message["content"] == f"error: keep: {TOO_DEEP}"
        assert output.content == f"result: error: keep: {TOO_DEEP}"


async def test_brackets_inside_strings_do_not_count_as_nesting(storage: StorageProvider) -> None:
    value = ['[{"\\"' * 500, "]}" * 500, "\\" * 9 + "[" * 100, "line\n" + "{" * 100]
    model = FakeModel(Reply.tool("keep", {"value": value}), "kept it")
    run = await ChatAgent(storage.history).start(plan_for(model)).wait()
    assert tool_results(run)[0]["result"] == "kept"
    assert calls == [value]
