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

from .._errors import AmbiguousSessionError, NotFoundError, UserError
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
    async def test_truncate_keeps_the_first_messages(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", _turn("first") + _turn("second"))
        await history.append_messages("s2", _turn("other"))
        await history.update_session("s1", title="Kept", metadata={"tag": "x"})
        before = await history.get_session("s1")
        await asyncio.sleep(0.01)
        await history.truncate_history("s1", 5)
        stored = await history.get_history("s1")
        assert [m.content for m in stored] == [m.content for m in _turn("first")] + [
            "second question"
        ]
        info = await history.get_session("s1")
        assert info.message_count == 5
        assert (info.title, info.owner, info.metadata, info.created_at) == (
            before.title,
            before.owner,
            before.metadata,
            before.created_at,
        )
        assert info.updated_at > before.updated_at
        assert len(await history.get_history("s2")) == 4  # other sessions are untouched
        await history.append_messages("s1", [Message(role="user", content="after")])
        assert [m.content for m in await history.get_history("s1", limit=2)] == [
            "second question",
            "after",
        ]

    @pytest.mark.asyncio
    async def test_truncate_to_nothing_and_to_everything(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", _turn("x"))
        info = await history.get_session("s1")
        await history.truncate_history("s1", 4)  # keeps everything: changes nothing at all
        assert await history.get_session("s1") == info
        assert len(await history.get_history("s1")) == 4
        await history.truncate_history("s1", 0)
        assert await history.get_history("s1") == []
        assert (await history.get_session("s1")).message_count == 0
        await history.truncate_history("s1", 0)  # again: still there, still empty
        assert [s.id for s in await history.list_sessions()] == ["s1"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("keep", [-1, 5, 100, True, 1.0, "2", None])
    async def test_truncate_refuses_a_bad_count(
        self, history: HistoryStorage, keep: object
    ) -> None:
        await history.append_messages("s1", _turn("x"))
        info = await history.get_session("s1")
        with pytest.raises(UserError):
            await history.truncate_history("s1", keep)  # type: ignore[arg-type]
        assert len(await history.get_history("s1")) == 4
        assert await history.get_session("s1") == info

    @pytest.mark.asyncio
    async def test_truncate_an_unknown_session(self, history: HistoryStorage) -> None:
        with pytest.raises(NotFoundError):
            await history.truncate_history("missing", 0)
        with pytest.raises(UserError):
            await history.truncate_history("../x", 0)
        assert await history.list_sessions() == []

    @pytest.mark.asyncio
    async def test_truncate_leaves_nothing_for_search(self, history: HistoryStorage) -> None:
        await history.append_messages("s1", [Message(role="user", content="keep walrus")])
        await history.append_messages("s1", [Message(role="user", content="drop narwhal")])
        assert [h.message.content for h in await history.search("narwhal")] == ["drop narwhal"]
        await history.truncate_history("s1", 1)
        assert await history.search("narwhal") == []
        assert [h.message.content for h in await history.search("walrus")] == ["keep walrus"]
        await history.append_messages("s1", [Message(role="user", content="new narwhal")])
        assert [h.message.content for h in await history.search("narwhal")] == ["new narwhal"]

    @pytest.mark.asyncio
    async def test_truncate_while_others_append(self, history: HistoryStorage) -> None:
        await history.append_messages(
            "busy", [Message(role="user", content=f"m{i}") for i in range(10)]
        )

        async def writer() -> None:
            for i in range(10):
                await history.append_messages("busy", [Message(role="user", content=f"w{i}")])

        await asyncio.gather(writer(), history.truncate_history("busy", 3))
        contents = [m.content for m in await history.get_history("busy")]
        # The truncation happened between two appends: the first three, then the appends
        # made after it, in order; never a history cut half-way.
        later = [f"w{i}" for i in range(10 - (len(contents) - 3), 10)]
        assert contents == ["m0", "m1", "m2", *later]
        assert (await history.get_session("busy")).message_count == len(contents)

    @pytest.mark.asyncio
    async def test_find_session_by_id_or_unique_prefix(self, history: HistoryStorage) -> None:
        for name in ["alpha-1", "alpha-2", "alpha", "beta-7"]:
            await history.append_messages(name, [Message(role="user", content=name)])
        assert (await history.find_session("beta")).id == "beta-7"
        assert (await history.find_session("alpha-2")).id == "alpha-2"
        assert (await history.find_session("alpha")).id == "alpha"  # the exact id wins
        with pytest.raises(AmbiguousSessionError) as ambiguous:
            await history.find_session("alph")
        assert ambiguous.value.matches == ["alpha", "alpha-1", "alpha-2"]
        assert isinstance(ambiguous.value, UserError)
        with pytest.raises(NotFoundError):
            await history.find_session("gamma")
        with pytest.raises(UserError):
            await history.find_session("a b")

    @pytest.mark.asyncio
    async def test_search_finds_messages_with_every_word(self, history: HistoryStorage) -> None:
        await history.append_messages(
            "cook",
            [
                Message(role="user", content="How do I bake SOURDOUGH bread?"),
                Message(role="assistant", content="Feed the starter, then bake it hot."),
                Message(role="assistant", content=None, tool_calls=[]),
            ],
        )
        await history.append_messages(
            "cafe", [Message(role="user", content="A café near the baker's")]
        )
        await history.append_messages("mine", [Message(role="user", content="I bake")], owner="bob")
        found = await history.search("sourdough BAKE")
        assert [(h.session_id, h.message.content) for h in found] == [
            ("cook", "How do I bake SOURDOUGH bread?")
        ]
        assert "**" in found[0].snippet
        assert {h.message.role for h in await history.search("bake")} == {"user", "assistant"}
        assert [h.session_id for h in await history.search("cafe")] == ["cafe"]  # no accents
        assert [h.session_id for h in await history.search("baker")] == ["cafe"]  # whole words
        assert [h.session_id for h in await history.search("bake", owner="bob")] == ["mine"]
        assert await history.search("bake", owner="alice") == []
        assert await history.search("bake", session_id="cafe") == []
        assert len(await history.search("bake", session_id="cook")) == 2
        assert len(await history.search("bake", limit=1)) == 1
        assert await history.search('bread" OR * -NEAR(') == []  # operators are plain text
        assert await history.search("walrus") == []
        with pytest.raises(UserError):
            await history.search("  -- ")

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
