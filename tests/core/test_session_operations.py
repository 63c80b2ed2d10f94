"""Package mode: the session operations every mode shares — titles made by the agent,
truncation, lookup by prefix and search — through ``DirectChatInterface``."""

from __future__ import annotations

import pytest
from chat_shell import (
    AmbiguousSessionError,
    ChatInput,
    DirectChatInterface,
    InterfaceConfig,
    Message,
    NotFoundError,
    UserError,
    session_title,
)
from chat_shell.testing import FakeModel, Reply


def _chat(*replies: Reply | str) -> DirectChatInterface:
    return DirectChatInterface(
        InterfaceConfig(model=FakeModel(*replies), use_config_file=False, use_environment=False)
    )


def test_the_title_is_the_first_line_cut_to_sixty() -> None:
    assert session_title("\n\n  Plan a trip to Lisbon  \nin May") == "Plan a trip to Lisbon"
    long = "word " * 30
    assert session_title(long) == long.strip()[:59] + "…"
    assert len(session_title(long)) == 60
    assert session_title("x" * 60) == "x" * 60
    assert session_title("   \n ") == ""


async def test_a_new_session_is_titled_after_its_first_question() -> None:
    async with _chat("one", "two") as chat:
        first = await chat.chat(ChatInput(message="\nWhat is a monad?\nbe brief", session_id="s1"))
        assert first.status == "completed"
        assert (await chat.storage.history.get_session("s1")).title == "What is a monad?"
        await chat.chat(ChatInput(message="and a functor?", session_id="s1"))
        [info] = await chat.list_sessions()
        assert info.title == "What is a monad?"  # later turns do not change it


async def test_a_session_made_without_an_id_is_titled_too() -> None:
    async with _chat("hi there") as chat:
        output = await chat.chat("Hello")
        assert (await chat.storage.history.get_session(output.session_id)).title == "Hello"


async def test_a_title_set_by_hand_is_kept() -> None:
    async with _chat("one", "two") as chat:
        await chat.chat(ChatInput(message="first", session_id="s1"))
        await chat.storage.history.update_session("s1", title="Mine")
        await chat.clear_history("s1")
        await chat.chat(ChatInput(message="after the clear", session_id="s1"))
        assert (await chat.storage.history.get_session("s1")).title == "Mine"


async def test_a_cleared_untitled_session_is_titled_by_its_next_first_question() -> None:
    async with _chat("one") as chat:
        await chat.storage.history.append_messages(
            "imported", [Message(role="user", content="old")]
        )
        await chat.clear_history("imported")
        await chat.chat(ChatInput(message="a fresh start", session_id="imported"))
        assert (await chat.storage.history.get_session("imported")).title == "a fresh start"


async def test_a_failed_first_turn_still_titles_its_stored_question() -> None:
    async with _chat(Reply.error(401, "bad key")) as chat:
        output = await chat.chat(ChatInput(message="will this work?", session_id="s1"))
        assert output.status == "failed"
        assert (await chat.storage.history.get_session("s1")).title == "will this work?"


async def test_an_unstored_turn_makes_no_session() -> None:
    async with _chat("one") as chat:
        await chat.chat(ChatInput(message="secret", session_id="s1", store=False))
        assert await chat.list_sessions() == []


async def test_truncate_find_and_search_through_the_interface() -> None:
    async with _chat("pears are ripe", "apples too") as chat:
        await chat.chat(ChatInput(message="tell me about pears", session_id="fruit-1"))
        await chat.chat(ChatInput(message="and apples", session_id="fruit-1"))
        await chat.chat(ChatInput(message="unrelated", session_id="fruit-2"))
        assert [h.message.content for h in await chat.search("PEARS")] == [
            "tell me about pears",
            "pears are ripe",
        ]
        assert (await chat.find_session("fruit-1")).id == "fruit-1"
        with pytest.raises(AmbiguousSessionError):
            await chat.find_session("fruit")
        with pytest.raises(NotFoundError):
            await chat.find_session("veg")
        await chat.truncate_history("fruit-1", 2)
        assert [m.content for m in await chat.get_history("fruit-1")] == [
            "tell me about pears",
            "pears are ripe",
        ]
        with pytest.raises(UserError, match="has 2"):
            await chat.truncate_history("fruit-1", 3)
        with pytest.raises(NotFoundError):
            await chat.truncate_history("veg", 0)
        assert await chat.search("apples") == []
