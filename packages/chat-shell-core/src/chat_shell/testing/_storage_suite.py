"""The storage conformance suite: subclass it once per backend.

    class TestMyStorage(StorageConformance):
        async def make_storage(self, tmp_path):
            return MyStorage(path=tmp_path / "db")

Needs pytest and pytest-asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from .._errors import NotFoundError, UserError
from .._messages import Message, ToolCall
from .._storage.contract import HistoryStorage, StorageProvider

__all__ = ["StorageConformance"]

BAD_SESSION_IDS = ["", "../../etc/x", "a/b", "..", ".hidden", "a\\b", "a\x00b", "x" * 129, "a b"]


def _turn(prefix: str) -> list[Message]:
    return [
        Message(role="user", content=f"{prefix} question"),
        Message(
            role="assistant",
            content=None,
            tool_calls=[ToolCall(id="call_1", name="calculator", arguments={"expression": "1+1"})],
            metadata={"model": "openai/x", "usage": {"total_tokens": 3}, "status": "completed"},
        ),
        Message(role="tool", content="2", tool_call_id="call_1", name="calculator"),
        Message(role="assistant", content=f"{prefix} answer: 2", metadata={"latency_ms": 1.5}),
    ]


class StorageConformance:
    """Behaviour every ``StorageProvider`` must have."""

    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        raise NotImplementedError

    @pytest_asyncio.fixture
    async def provider(self, tmp_path: Path) -> AsyncIterator[StorageProvider]:
        provider = await self.make_storage(tmp_path)
        await provider.initialize()
        try:
            yield provider
        finally:
            await provider.close()

    @pytest.fixture
    def history(self, provider: StorageProvider) -> HistoryStorage:
        return provider.history

    @pytest.mark.asyncio
    async def test_unknown_session_has_empty_history(self, history: HistoryStorage) -> None:
        assert await history.get_history("nobody") == []

    @pytest.mark.asyncio
    async def test_usage_adds_up_the_model_answers_by_model(self, history: HistoryStorage) -> None:
        assert (await history.get_usage("nobody")).total_tokens == 0
        usage = {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
        await history.append_messages("s1", _turn("first"))
        await history.append_messages(
            "s1",
            [
                Message(role="user", content="again"),
                Message(role="assistant", content="a", metadata={"model": "b/y", "usage": usage}),
                Message(role="system", content="s", metadata={"model": "b/y", "usage": usage}),
                Message(role="assistant", content="no usage", metadata={"model": "b/y"}),
            ],
        )
        await history.append_messages("s2", _turn("other session"))
        totals = await history.get_usage("s1")
        assert totals.calls == 3
        assert (totals.prompt_tokens, totals.completion_tokens) == (20, 8)
        assert totals.total_tokens == 3 + 28
        assert sorted(totals.models) == ["b/y", "openai/x"]
        assert totals.models["openai/x"].total_tokens == 3
        assert totals.models["b/y"].calls == 2
        assert totals.cost is None  # prices are added by chat_shell.session_usage
        with pytest.raises(UserError):
            await history.get_usage("../x")

    @pytest.mark.asyncio
    async def test_round_trip_keeps_every_field(self, history: HistoryStorage) -> None:
        turn = _turn("first")
        await history.append_messages("s1", turn)
        stored = await history.get_history("s1")
        assert [m.model_dump() for m in stored] == [m.model_dump() for m in turn]

    @pytest.mark.asyncio
    async def test_appends_keep_order_and_limit_takes_the_last(
        self, history: HistoryStorage
    ) -> None:
        await history.append_messages("s1", _turn("first"))
        await history.append_messages("s1", _turn("second"))
        stored = await history.get_history("s1")
        assert [m.content for m in stored][::4] == ["first question", "second question"]
        last_two = await history.get_history("s1", limit=2)
        assert [m.content for m in last_two] == ["2", "second answer: 2"]
        assert await history.get_history("s1", limit=0) == []

    @pytest.mark.asyncio
    async def test_sessions_are_isolated(self, history: HistoryStorage) -> None:
        await history.append_messages("a", _turn("a"))
        await history.append_messages("b", _turn("b"))
        assert (await history.get_history("a"))[0].content == "a question"
        assert (await history.get_history("b"))[0].content == "b question"

    @pytest.mark.asyncio
    async def test_list_sessions_newest_first_with_paging(self, history: HistoryStorage) -> None:
        for name in ["s1", "s2", "s3"]:
            await history.append_messages(name, [Message(role="user", content=name)])
            await asyncio.sleep(0.01)
        sessions = await history.list_sessions()
        assert [s.id for s in sessions] == ["s3", "s2", "s1"]
        assert sessions[0].message_count == 1
        assert [s.id for s in await history.list_sessions(limit=1, offset=1)] == ["s2"]
        await history.append_messages("s1", [Message(role="user", content="again")])
        assert (await history.list_sessions(limit=1))[0].id == "s1"

    @pytest.mark.asyncio
    async def test_owner_is_recorded_and_filters(self, history: HistoryStorage) -> None:
        await history.append_messages("mine", [Message(role="user", content="x")], owner="k1")
        await history.append_messages("theirs", [Message(role="user", content="y")], owner="k2")
        assert [s.id for s in await history.list_sessions(owner="k1")] == ["mine"]
        assert (await history.get_session("theirs")).owner == "k2"

    @pytest.mark.asyncio
    async def test_get_and_update_session(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", _turn("x"))
        info = await history.get_session("s1")
        assert info.id == "s1"
        assert info.message_count == 4
        assert info.created_at <= info.updated_at
        updated = await history.update_session("s1", title="Sums", metadata={"tag": "math"})
        assert updated.title == "Sums"
        again = await history.get_session("s1")
        assert again.title == "Sums"
        assert again.metadata == {"tag": "math"}
        with pytest.raises(NotFoundError):
            await history.get_session("missing")
        with pytest.raises(NotFoundError):
            await history.update_session("missing", title="x")

    @pytest.mark.asyncio
    async def test_clear_history_keeps_the_session(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", _turn("x"))
        await history.append_messages("s2", _turn("y"))
        await history.clear_history("s1")
        assert await history.get_history("s1") == []
        assert (await history.get_session("s1")).message_count == 0
        assert len(await history.get_history("s2")) == 4

    @pytest.mark.asyncio
    async def test_delete_session(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", _turn("x"))
        await history.append_messages("s2", _turn("y"))
        await history.delete_session("s1")
        assert await history.get_history("s1") == []
        assert [s.id for s in await history.list_sessions()] == ["s2"]
        with pytest.raises(NotFoundError):
            await history.delete_session("s1")

    @pytest.mark.asyncio
    @pytest.mark.parametrize("session_id", BAD_SESSION_IDS)
    async def test_bad_session_ids_are_refused(
        self, history: HistoryStorage, session_id: str
    ) -> None:
        with pytest.raises(UserError):
            await history.append_messages(session_id, [Message(role="user", content="x")])
        with pytest.raises(UserError):
            await history.get_history(session_id)
        assert await history.list_sessions() == []

    @pytest.mark.asyncio
    async def test_concurrent_appends_lose_nothing(self, history: HistoryStorage) -> None:
        async def writer(n: int) -> None:
            for i in range(10):
                await history.append_messages("busy", [Message(role="user", content=f"{n}-{i}")])

        await asyncio.gather(*(writer(n) for n in range(5)))
        stored = await history.get_history("busy")
        assert len(stored) == 50
        for n in range(5):
            mine = [m.content for m in stored if m.content and m.content.startswith(f"{n}-")]
            assert mine == [f"{n}-{i}" for i in range(10)]

    @pytest.mark.asyncio
    async def test_empty_append_changes_nothing(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", [])
        assert await history.list_sessions() == []

    @pytest.mark.asyncio
    async def test_unicode_content(self, history: HistoryStorage) -> None:
        text = 'héllo ✓ 你好 \U0001f600 "quotes" \n new line \\ backslash'
        await history.append_messages("u", [Message(role="user", content=text)])
        assert (await history.get_history("u"))[0].content == text

    @pytest.mark.asyncio
    async def test_initialize_and_close_are_idempotent(self, provider: StorageProvider) -> None:
        await provider.initialize()
        await provider.history.append_messages("s", [Message(role="user", content="x")])
        assert await provider.health()
