"""Package mode end to end: DirectChatInterface → the lean OpenAI client → a scripted server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from chat_shell import (
    ChatInput,
    DirectChatInterface,
    EventType,
    InterfaceConfig,
    JSONStorage,
    Message,
    NotFoundError,
    UserError,
)
from chat_shell.testing import FakeModel, Reply, ScriptedModelServer


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
async def chat(server: ScriptedModelServer) -> AsyncIterator[DirectChatInterface]:
    config = InterfaceConfig(
        model="openai/scripted", api_base=server.url, tools=[multiply], retries=0
    )
    async with DirectChatInterface(config) as chat:
        yield chat


async def test_chat_returns_the_answer_and_stores_the_turn(chat: DirectChatInterface) -> None:
    output = await chat.chat("hello")
    assert output.content == "echo: hello"
    assert output.status == "completed"
    assert output.model == "openai/scripted"
    assert output.usage["total_tokens"] > 0
    history = await chat.get_history(output.session_id)
    assert [(m.role, m.content) for m in history] == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
    ]


async def test_sessions_continue(chat: DirectChatInterface, server: ScriptedModelServer) -> None:
    first = await chat.chat("one")
    second = await chat.chat(ChatInput(message="two", session_id=first.session_id))
    assert second.session_id == first.session_id
    assert [m["content"] for m in server.requests[1]["messages"]] == ["one", "echo: one", "two"]
    sessions = await chat.list_sessions()
    assert [s.id for s in sessions] == [first.session_id]


async def test_stream_gives_text_and_typed_events(chat: DirectChatInterface) -> None:
    stream = chat.stream_chat("tokens 5")
    assert [chunk async for chunk in stream] == ["t0 ", "t1 ", "t2 ", "t3 ", "t4 "]
    output = await stream.output()
    assert output.content == "t0 t1 t2 t3 t4 "
    events = [event async for event in stream.events()]
    assert [e.event_type for e in events][-1] is EventType.COMPLETE
    assert all(e.session_id == stream.session_id and e.run_id == stream.run_id for e in events)


async def test_tool_calls_are_listed_in_the_output(chat: DirectChatInterface) -> None:
    output = await chat.chat('call multiply {"a": 123, "b": 456}')
    assert output.content == "result: 56088.0"
    assert output.metadata["tool_calls"] == [
        {
            "id": "call_0_multiply",
            "name": "multiply",
            "arguments": {"a": 123, "b": 456},
            "result": "56088.0",
        }
    ]


async def test_per_request_tool_allow_list(
    chat: DirectChatInterface, server: ScriptedModelServer
) -> None:
    await chat.chat(ChatInput(message="no tools please", tools=[]))
    assert "tools" not in server.requests[-1]
    with pytest.raises(UserError, match="unknown tools shell"):
        chat.stream_chat(ChatInput(message="x", tools=["shell"]))


async def test_leaving_a_stream_early_cancels_and_keeps_the_partial_answer(
    chat: DirectChatInterface, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(500, delay=0.01))
    async with chat.stream_chat("long") as stream:
        async for chunk in stream:
            if chunk == "t3 ":
                break
    output = await stream.output()
    assert output.status == "cancelled"
    history = await chat.get_history(stream.session_id)
    assert history[-1].metadata["status"] == "cancelled"
    assert history[-1].content is not None
    assert history[-1].content.startswith("t0 t1 t2 t3 ")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("", "the message is empty"),
        ("   ", "the message is empty"),
        (ChatInput(message="x", session_id="../../etc/x"), "invalid session id"),
        (ChatInput(message="x", model="llama3.2"), "no provider prefix"),
        (ChatInput(message="x", model="gpt-4o"), "no API key for openai/gpt-4o"),
        (ChatInput(message="x", model="nosuch/model"), "unknown model provider 'nosuch'"),
        (
            ChatInput(message="x", model="openai/gpt-4o"),
            "no API key for openai/gpt-4o: set OPENAI_API_KEY",
        ),
        (ChatInput(message="x", model="anthropic/claude-x"), "set ANTHROPIC_API_KEY"),
    ],
)
async def test_bad_input_is_a_user_error_and_changes_nothing(
    chat: DirectChatInterface, message: str | ChatInput, error: str
) -> None:
    with pytest.raises(UserError, match=error):
        await chat.chat(message)
    assert await chat.list_sessions() == []


async def test_unreachable_api_base_is_a_failed_run_not_a_traceback() -> None:
    config = InterfaceConfig(model="openai/x", api_base="http://127.0.0.1:9/v1", retries=0)
    async with DirectChatInterface(config) as chat:
        output = await chat.chat("hello")
        assert output.status == "failed"
        assert output.error is not None
        assert output.error["retryable"] is True
        assert "cannot connect" in output.error["message"]
        assert [m.content for m in await chat.get_history(output.session_id)] == ["hello"]


async def test_api_key_from_the_environment(
    server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    async with DirectChatInterface(InterfaceConfig(model="openai/gpt-4o-mini")) as chat:
        assert (await chat.chat("hi")).content == "echo: hi"
    assert server.headers[0]["Authorization"] == "Bearer sk-env-key-0123456789"
    assert server.requests[0]["model"] == "gpt-4o-mini"


async def test_fallback_models_from_settings(
    server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    server.add(Reply.error(500))
    config = InterfaceConfig(
        model="openai/primary", fallback_models=["openai/backup"], retries=0, use_config_file=False
    )
    async with DirectChatInterface(config) as chat:
        output = await chat.chat("hi")
    assert output.content == "echo: hi"
    assert output.model == "openai/backup"
    assert [r["model"] for r in server.requests] == ["primary", "backup"]


async def test_context_messages_and_json_storage(
    tmp_path: object, server: ScriptedModelServer
) -> None:
    config = InterfaceConfig(
        model="openai/x",
        api_base=server.url,
        storage="json",
        storage_options={"path": str(tmp_path)},
    )
    async with DirectChatInterface(config) as chat:
        assert isinstance(chat.storage, JSONStorage)
        context = [Message(role="system", content="You know the user is called Ada.")]
        output = await chat.chat(ChatInput(message="who am I?", context=context, session_id="ada"))
        assert server.requests[0]["messages"][0]["content"] == "You know the user is called Ada."
        assert [m.role for m in await chat.get_history("ada")] == ["user", "assistant"]
        await chat.clear_history(output.session_id)
        assert await chat.get_history("ada") == []
        await chat.delete_session("ada")
        with pytest.raises(NotFoundError):
            await chat.delete_session("ada")


async def test_shutdown_cancels_runs_in_flight() -> None:
    chat = DirectChatInterface(InterfaceConfig(model=FakeModel(Reply.tokens(1000, delay=0.01))))
    await chat.initialize()
    stream = chat.stream_chat("go")
    await asyncio.sleep(0.05)
    await chat.shutdown()
    assert (await stream.output()).status == "cancelled"


async def test_using_it_before_initialize_says_what_to_do() -> None:
    chat = DirectChatInterface(InterfaceConfig(model=FakeModel("x")))
    with pytest.raises(UserError, match="initialize"):
        chat.stream_chat("hi")


async def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(UserError, match="two tools are named 'multiply'"):
        DirectChatInterface(InterfaceConfig(model=FakeModel("x"), tools=[multiply, multiply]))
