"""What real servers answer, through the whole agent, on both model paths (issue: real-world
answers parsed right): DirectChatInterface → backend → the scripted server on 127.0.0.1."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_shell import DirectChatInterface, EventType, InterfaceConfig, UserError
from chat_shell.testing import (
    Recording,
    Reply,
    ScriptedModelServer,
    ScriptedOllamaServer,
    ScriptedToolCall,
)

UPSTREAMS = Path(__file__).parent.parent / "fixtures" / "upstreams"
LLAMA_CPP_TOOL_CALL = UPSTREAMS / "llama-cpp-python-0.3.36-tool-call-stream.sse"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


# The openai/ path (chat-shell's client) and the litellm path (hosted_vllm/ is litellm's
# OpenAI-compatible provider), against the same server.
@pytest.fixture(
    params=["openai/scripted", pytest.param("hosted_vllm/scripted", marks=pytest.mark.litellm)]
)
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def calc_tool() -> tuple[Callable[[str], str], list[str]]:
    """A ``calc`` tool, and the list of what it was asked."""
    asked: list[str] = []

    def calc(expression: str) -> str:
        """Evaluate an arithmetic expression.

        Args:
            expression: the expression
        """
        asked.append(expression)
        return "56088"

    return calc, asked


def interface(model: str, server: ScriptedModelServer, **options: Any) -> DirectChatInterface:
    options.setdefault("retries", 0)
    return DirectChatInterface(
        InterfaceConfig(model=model, api_base=server.url, use_config_file=False, **options)
    )


async def test_the_recorded_llama_cpp_tool_call_runs_its_tool_once(
    model: str, server: ScriptedModelServer
) -> None:
    calc, asked = calc_tool()
    server.add(Recording.from_file(LLAMA_CPP_TOOL_CALL), Reply.text("It is 56088."))
    async with interface(model, server, tools=[calc]) as chat:
        output = await chat.chat("what is 123*456?")
    assert output.status == "completed"
    assert output.content == "It is 56088."
    assert asked == ["123*456, math.combinat,"]
    assert [call["name"] for call in output.metadata["tool_calls"]] == ["calc"]
    assert len(server.requests) == 2
    assert server.requests[1]["messages"][-1]["content"] == "56088"


async def test_an_answer_cut_off_by_max_tokens_says_so(
    model: str, server: ScriptedModelServer
) -> None:
    server.add(
        Recording.sse(
            chunk({"role": "assistant", "content": "Once upon "}),
            chunk({"content": "a time"}),
            chunk({}, "length"),
        )
    )
    async with interface(model, server, max_tokens=3) as chat:
        stream = chat.stream_chat("tell me a story")
        events = [event async for event in stream.events()]
        output = await stream.output()
        stored = await chat.get_history(output.session_id)
    complete = events[-1]
    assert complete.event_type is EventType.COMPLETE
    assert complete.data["status"] == "incomplete"
    assert complete.data["finish_reason"] == "length"
    assert "cut off" in complete.data["reason"]
    assert (output.status, output.finish_reason, output.truncated) == ("incomplete", "length", True)
    assert output.content == "Once upon a time"
    assert "max_tokens" in (output.reason or "")
    assert stored[-1].content == "Once upon a time"
    assert stored[-1].metadata["status"] == "incomplete"
    assert stored[-1].metadata["finish_reason"] == "length"


async def test_a_tool_call_cut_off_is_not_run(model: str, server: ScriptedModelServer) -> None:
    calc, asked = calc_tool()
    call = {"index": 0, "id": "c1", "type": "function"}
    server.add(
        Recording.sse(
            chunk({"tool_calls": [{**call, "function": {"name": "calc", "arguments": '{"expr'}}]}),
            chunk({}, "length"),
        )
    )
    async with interface(model, server, tools=[calc]) as chat:
        output = await chat.chat("compute")
        stored = await chat.get_history(output.session_id)
    assert (output.status, output.finish_reason) == ("incomplete", "length")
    assert asked == []
    assert len(server.requests) == 1
    assert [(m.role, m.tool_calls) for m in stored] == [("user", None), ("assistant", None)]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Recording.sse(), id="llama.cpp-context-overflow-empty-stream"),
        pytest.param(
            Recording.sse(chunk({"role": "assistant", "content": ""}), chunk({}, "stop")),
            id="litellm-proxy-says-stop",
        ),
    ],
)
async def test_an_empty_answer_is_an_error_not_a_success(
    model: str, server: ScriptedModelServer, answer: Recording
) -> None:
    server.add(answer)
    async with interface(model, server) as chat:
        output = await chat.chat("a very long conversation")
        stored = await chat.get_history(output.session_id)
    assert output.status == "failed"
    assert output.error is not None
    assert output.error["code"] == "no_output"
    assert output.error["retryable"] is False
    assert "the model returned no output" in output.error["message"]
    assert [m.role for m in stored] == ["user"]  # no empty assistant message


async def test_usage_is_empty_when_the_server_counts_none(
    model: str, server: ScriptedModelServer
) -> None:
    server.add(Recording.sse(chunk({"role": "assistant", "content": "hi"}), chunk({}, "stop")))
    async with interface(model, server) as chat:
        output = await chat.chat("hello")
    assert output.content == "hi"
    assert output.usage == {}


@pytest.mark.litellm
async def test_retry_after_of_a_429_is_honoured_on_the_litellm_path() -> None:
    """The agent waits what the provider asked (1 s; its own first backoff is 0.5 s)."""
    arrivals: list[float] = []

    def respond(request: dict[str, Any]) -> Reply | Recording:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            body = b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'
            headers = {"Content-Type": "application/json", "Retry-After": "1"}
            return Recording(body, status=429, headers=headers)
        return Reply.text("fine now")

    with ScriptedModelServer(responder=respond) as server:
        async with interface("hosted_vllm/scripted", server, retries=1) as chat:
            output = await chat.chat("hi")
    assert output.content == "fine now"
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.95


@pytest.mark.litellm
async def test_ollama_with_tools_uses_the_chat_api() -> None:
    """``ollama/llama3.2`` (as documented) with tools: native tool calls on /api/chat, never
    /api/generate with ``format: json``."""
    calc, asked = calc_tool()
    replies = [
        Reply(
            reasoning=["Let me compute."],
            tool_calls=[ScriptedToolCall("calc", {"expression": "123*456"})],
        ),
        Reply.text("It is 56088."),
    ]
    with ScriptedOllamaServer(replies) as server:
        config = InterfaceConfig(
            model="ollama/llama3.2", api_base=server.url, tools=[calc], use_config_file=False
        )
        async with DirectChatInterface(config) as chat:
            stream = chat.stream_chat("what is 123*456?")
            events = [event async for event in stream.events()]
            output = await stream.output()
    assert output.status == "completed", output.error
    assert output.content == "It is 56088."
    assert output.model == "ollama/llama3.2"
    assert asked == ["123*456"]
    assert [e.delta for e in events if e.event_type is EventType.THINKING] == ["Let me compute."]
    paths = [path for _, path in server.paths]
    assert "/api/generate" not in paths
    assert paths.count("/api/chat") == 2
    first = server.requests[0]
    assert first["model"] == "llama3.2"
    assert "format" not in first
    assert first["tools"][0]["function"]["name"] == "calc"
    assert output.usage["total_tokens"] > 0


async def test_the_seed_example_with_a_bare_model_name(
    server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``InterfaceConfig(model="gpt-4", temperature=0.7)``: gpt-4 is OpenAI's, as in litellm."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    async with DirectChatInterface(InterfaceConfig(model="gpt-4", temperature=0.7)) as chat:
        output = await chat.chat("Hello")
    assert output.content == "echo: Hello"
    assert output.model == "openai/gpt-4"
    assert (server.requests[0]["model"], server.requests[0]["temperature"]) == ("gpt-4", 0.7)


async def test_a_fallback_without_credentials_is_skipped_with_a_warning(
    server: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = InterfaceConfig(
        model="openai/scripted",
        api_base=server.url,
        fallback_models=["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"],
        use_config_file=False,
    )
    with caplog.at_level(logging.WARNING, logger="chat_shell"):
        async with DirectChatInterface(config) as chat:
            first = await chat.chat("hi")
            second = await chat.chat("again")
    assert (first.status, first.content) == ("completed", "echo: hi")
    assert second.status == "completed"
    expected = [
        "fallback model anthropic/claude-haiku-4-5 skipped: no API key for "
        "anthropic/claude-haiku-4-5: set ANTHROPIC_API_KEY, or `chat-shell config set "
        "models.anthropic/claude-haiku-4-5.api_key KEY`",
        "fallback model openai/gpt-4o-mini skipped: no API key for openai/gpt-4o-mini: set "
        "OPENAI_API_KEY, or `chat-shell config set models.openai/gpt-4o-mini.api_key KEY`, or "
        "point OPENAI_BASE_URL at an OpenAI-compatible server",
    ]
    assert first.warnings == expected
    # logged once per interface, not on every turn
    assert [r.getMessage() for r in caplog.records if "fallback" in r.getMessage()] == expected


async def test_the_model_itself_without_credentials_is_still_an_error() -> None:
    config = InterfaceConfig(
        model="anthropic/claude-haiku-4-5", fallback_models=["openai/x"], use_config_file=False
    )
    async with DirectChatInterface(config) as chat:
        with pytest.raises(UserError, match="no API key for anthropic/claude-haiku-4-5"):
            chat.stream_chat("hi")


def test_without_litellm_other_providers_name_the_install_command(
    server: ScriptedModelServer,
) -> None:
    """chat-shell-core alone (no litellm): openai/ works; anthropic/… says what to install,
    and a fallback that needs litellm is skipped with that same advice."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.modules["litellm"] = None  # as if it were not installed
        from chat_shell import DirectChatInterface, InterfaceConfig, UserError

        async def main():
            config = InterfaceConfig(
                model="openai/scripted", api_base="{server.url}", use_config_file=False,
                fallback_models=["anthropic/claude-haiku-4-5"],
            )
            async with DirectChatInterface(config) as chat:
                output = await chat.chat("hi")
                print(output.content)
                print(output.warnings[0])
                try:
                    chat.stream_chat(
                        __import__("chat_shell").ChatInput(message="x", model="anthropic/claude-x")
                    )
                except UserError as exc:
                    print(exc.message)

        asyncio.run(main())
        """
    )
    env = {"ANTHROPIC_API_KEY": "sk-ant-test", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "echo: hi"
    hint = "pip install 'chat-shell-core[litellm]'"
    assert lines[1].startswith("fallback model anthropic/claude-haiku-4-5 skipped:")
    assert hint in lines[1]
    assert lines[2] == (
        f"anthropic/claude-x is called through litellm, which is not installed: {hint} "
        "(openai/… models work without it)"
    )
