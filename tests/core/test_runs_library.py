"""Runs in package mode go through the run store: one run per session, busy sessions keep
their history, cancels through the store, and runs whose process died end ``interrupted``
with their partial answer in the history (and a valid conversation after it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from chat_shell import (
    ChatEvent,
    ChatInput,
    DirectChatInterface,
    EventType,
    InterfaceConfig,
    MemoryRunStore,
    MemoryStorage,
    Message,
    RunInfo,
    RunManager,
    SessionBusyError,
)
from chat_shell.testing import FunctionModel, Reply


def slow_model() -> FunctionModel:
    """Answers ``slow`` with 40 tokens 50 ms apart, anything else at once."""

    def answer(request: object) -> Reply:
        last = request.messages[-1]["content"]  # type: ignore[attr-defined]
        if last == "slow":
            return Reply.tokens(40, delay=0.05)
        return Reply.text(f"echo: {last}")

    return FunctionModel(answer)


@pytest.fixture
async def chat() -> AsyncIterator[DirectChatInterface]:
    async with DirectChatInterface(InterfaceConfig(model=slow_model())) as chat:
        yield chat


async def first_event(stream: object) -> ChatEvent:
    async for event in stream.events():  # type: ignore[attr-defined]
        return event  # type: ignore[no-any-return]
    raise AssertionError("no event")


async def test_a_busy_session_refuses_a_second_turn(chat: DirectChatInterface) -> None:
    first = chat.stream_chat(ChatInput(message="slow", session_id="s1"))
    await first.started()
    with pytest.raises(SessionBusyError) as caught:
        await chat.chat(ChatInput(message="again", session_id="s1"))
    assert caught.value.run_id == first.run_id
    assert caught.value.code == "session_busy"
    other = await chat.chat(ChatInput(message="elsewhere", session_id="s2"))
    assert other.status == "completed"
    output = await first.output()
    assert output.status == "completed"
    after = await chat.chat(ChatInput(message="now", session_id="s1"))
    assert after.content == "echo: now"
    history = await chat.get_history("s1")
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
    assert "again" not in [m.content for m in history]


async def test_a_stream_of_a_busy_session_raises_when_read(chat: DirectChatInterface) -> None:
    first = chat.stream_chat(ChatInput(message="slow", session_id="s1"))
    second = chat.stream_chat(ChatInput(message="second", session_id="s1"))
    with pytest.raises(SessionBusyError):
        [event async for event in second.events()]
    with pytest.raises(SessionBusyError):
        await second.output()
    await first.cancel()


async def test_deleting_or_clearing_a_busy_session_is_refused(chat: DirectChatInterface) -> None:
    await chat.chat(ChatInput(message="hello", session_id="s1"))
    stream = chat.stream_chat(ChatInput(message="slow", session_id="s1"))
    await first_event(stream)
    with pytest.raises(SessionBusyError):
        await chat.delete_session("s1")
    with pytest.raises(SessionBusyError):
        await chat.clear_history("s1")
    await stream.output()
    assert len(await chat.get_history("s1")) == 4
    await chat.clear_history("s1")
    assert await chat.get_history("s1") == []
    await chat.delete_session("s1")


async def test_two_interfaces_on_one_run_store_share_the_claim() -> None:
    store = MemoryRunStore()
    storage = MemoryStorage()
    one = DirectChatInterface(InterfaceConfig(model=slow_model(), storage=storage, run_store=store))
    two = DirectChatInterface(
        InterfaceConfig(
            model=slow_model(), storage=storage, run_store=MemoryRunStore.sharing(store)
        )
    )
    async with one, two:
        stream = one.stream_chat(ChatInput(message="slow", session_id="shared"))
        await first_event(stream)
        with pytest.raises(SessionBusyError):
            await two.chat(ChatInput(message="meanwhile", session_id="shared"))
        with pytest.raises(SessionBusyError):
            await two.delete_session("shared")
        # the other interface follows and cancels it through the store
        events = asyncio.create_task(_collect(two.runs.follow(stream.run_id)))
        assert await two.runs.cancel(stream.run_id)
        final = await asyncio.wait_for(two.runs.wait(stream.run_id), 10)
        assert final.status == "cancelled"
        seen = await asyncio.wait_for(events, 10)
        assert [e.seq for e in seen] == list(range(len(seen)))
        assert seen[-1].data["status"] == "cancelled"
        assert (await stream.output()).status == "cancelled"


async def _collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in events]


async def test_every_event_reaches_the_store() -> None:
    store = MemoryRunStore()
    config = InterfaceConfig(model=slow_model(), run_store=store)
    async with DirectChatInterface(config) as chat:
        stream = chat.stream_chat(ChatInput(message="slow", session_id="s1"))
        mine = [event async for event in stream.events()]
        output = await stream.output()  # once it returns, the run's end is in the store
        stored = await store.read_events(stream.run_id)
        assert [e.model_dump() for e in stored] == [e.model_dump() for e in mine]
        info = await store.get_run(stream.run_id)
        assert info.status == "completed"
        assert info.content == output.content
        assert await store.session_run("s1") is None


def _dead_run(session_id: str, **fields: object) -> RunInfo:
    """A run as a process that then died left it in the store."""
    return RunInfo(
        run_id="run_" + "d" * 32,
        session_id=session_id,
        holder="dead-process",
        created_at=time.time() - 60,
        started_at=time.time() - 60,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_run_whose_process_died_is_interrupted_with_its_partial_answer() -> None:
    store, storage = MemoryRunStore(), MemoryStorage()
    await storage.history.append_messages("s1", [Message(role="user", content="tell me")])
    info = _dead_run("s1", content="half an ans", step_content="half an ans", model="m")
    await store.create_run(info, lease_seconds=0.01)
    await store.append_events(info.run_id, [
        ChatEvent.make(EventType.CONTENT, {"delta": "half an ans"}, run_id=info.run_id,
                       session_id="s1", seq=0)
    ], info)  # fmt: skip
    await asyncio.sleep(0.05)
    model = slow_model()
    config = InterfaceConfig(model=model, storage=storage, run_store=store)
    async with DirectChatInterface(config) as chat:  # opening the store sweeps
        ended = await store.get_run(info.run_id)
        assert ended.status == "interrupted"
        events = await store.read_events(info.run_id)
        assert events[-1].data["status"] == "interrupted"
        history = await chat.get_history("s1")
        assert [(m.role, m.content) for m in history] == [
            ("user", "tell me"),
            ("assistant", "half an ans"),
        ]
        assert history[-1].metadata["status"] == "interrupted"
        output = await chat.chat(ChatInput(message="go on", session_id="s1"))
        assert output.status == "completed"
        roles = [m["role"] for m in model.requests[-1].messages]
        assert roles == ["user", "assistant", "user"]


async def test_an_interrupted_run_with_nothing_said_still_leaves_a_valid_history() -> None:
    store, storage = MemoryRunStore(), MemoryStorage()
    await storage.history.append_messages(
        "s1",
        [
            Message(role="user", content="compute"),
            Message(
                role="assistant",
                content=None,
                tool_calls=[{"id": "c1", "name": "calculator", "arguments": {}}],  # type: ignore[list-item]
            ),
        ],
    )
    info = _dead_run("s1", open_tool_calls=[{"id": "c1", "name": "calculator"}])
    await store.create_run(info, lease_seconds=0.01)
    await asyncio.sleep(0.05)
    manager = RunManager(store, storage.history)
    await manager.open()
    await manager.close()
    history = await storage.history.get_history("s1")
    assert [m.role for m in history] == ["user", "assistant", "tool"]
    assert history[-1].tool_call_id == "c1"
    assert history[-1].metadata["status"] == "interrupted"

    await storage.history.append_messages("s2", [Message(role="user", content="hi")])
    quiet = _dead_run("s2").model_copy(update={"run_id": "run_" + "e" * 32})
    await store.create_run(quiet, lease_seconds=0.01)
    await asyncio.sleep(0.05)
    assert [i.run_id for i in await RunManager(store, storage.history).sweep()] == [quiet.run_id]
    history = await storage.history.get_history("s2")
    assert [m.role for m in history] == ["user", "assistant"]  # never user, user


async def test_a_busy_claim_of_a_dead_process_is_taken_over() -> None:
    store, storage = MemoryRunStore(), MemoryStorage()
    config = InterfaceConfig(model=slow_model(), storage=storage, run_store=store)
    async with DirectChatInterface(config) as chat:
        info = _dead_run("s1")
        await store.create_run(info, lease_seconds=0.01)
        await asyncio.sleep(0.05)
        output = await chat.chat(ChatInput(message="hello", session_id="s1"))
        assert output.status == "completed"
        assert (await store.get_run(info.run_id)).status == "interrupted"


async def test_a_run_that_lost_its_lease_stops_and_stores_nothing_more() -> None:
    store, storage = MemoryRunStore(), MemoryStorage()
    config = InterfaceConfig(model=slow_model(), storage=storage, run_store=store)
    async with DirectChatInterface(config) as chat:
        stream = chat.stream_chat(ChatInput(message="slow", session_id="s1"))
        await first_event(stream)
        await chat.runs.flush()
        # as if this process had hung past its lease: another process ends the run
        [ended] = await store.interrupt_expired(now=time.time() + 3600)
        await chat.runs.renew()
        output = await stream.output()
        assert output.status == "cancelled"
        assert (await store.get_run(stream.run_id)).status == "interrupted"
        history = await chat.get_history("s1")
        assert [m.role for m in history] == ["user"]  # the sweeper's caller stores the rest
        assert ended.step_content
