"""Export and import of sessions as JSON Lines, on the core backends (memory and json)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chat_shell import (
    HistoryStorage,
    ImportReport,
    JSONStorage,
    MemoryStorage,
    Message,
    NotFoundError,
    SessionInfo,
    ToolCall,
    UserError,
    export_sessions,
    import_sessions,
)
from chat_shell._storage.memory import MemoryHistoryStorage


def _turn(text: str) -> list[Message]:
    return [
        Message(role="system", content="be brief"),
        Message(role="user", content=text),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c1", name="calc", arguments={"e": "1+1"})],
            metadata={"model": "openai/m", "usage": {"total_tokens": 3}, "status": "completed"},
        ),
        Message(role="tool", content="2", tool_call_id="c1", name="calc"),
        Message(role="assistant", content="2 ✓", metadata={"latency_ms": 1.5}),
    ]


async def _export(history: HistoryStorage, ids: list[str] | None = None) -> list[str]:
    return [line async for line in export_sessions(history, ids)]


async def _filled() -> MemoryStorage:
    storage = MemoryStorage()
    await storage.history.append_messages("s1", _turn("one"), owner="alice")
    await storage.history.update_session("s1", title="First", metadata={"tag": "x"})
    await storage.history.append_messages("s2", _turn("two"))
    return storage


async def test_format_is_a_session_line_then_its_messages() -> None:
    storage = await _filled()
    lines = await _export(storage.history, ["s1"])
    assert all(line.endswith("\n") for line in lines)
    items = [json.loads(line) for line in lines]
    assert items[0]["type"] == "session"
    assert items[0]["id"] == "s1"
    assert items[0]["title"] == "First"
    assert items[0]["owner"] == "alice"
    assert items[0]["message_count"] == 5
    assert [item["type"] for item in items[1:]] == ["message"] * 5
    assert {item["session_id"] for item in items[1:]} == {"s1"}
    assert items[3]["tool_calls"] == [{"id": "c1", "name": "calc", "arguments": {"e": "1+1"}}]


async def test_memory_to_json_to_memory_keeps_everything(tmp_path: Path) -> None:
    source = await _filled()
    lines = await _export(source.history)
    assert sum(json.loads(line)["type"] == "session" for line in lines) == 2
    async with JSONStorage(path=tmp_path / "history") as middle:
        report = await import_sessions(middle.history, lines)
        assert sorted(report.imported) == ["s1", "s2"]
        assert report.messages == 10
        assert report.skipped == {}
        from_json = await _export(middle.history)
    target = MemoryStorage()
    await import_sessions(target.history, iter(from_json))
    for session_id in ("s1", "s2"):
        assert await target.history.get_session(session_id) == await source.history.get_session(
            session_id
        )
        assert await target.history.get_history(session_id) == await source.history.get_history(
            session_id
        )


async def test_import_accepts_text_and_async_lines() -> None:
    lines = await _export((await _filled()).history)

    async def agen() -> AsyncIterator[str]:
        for line in lines:
            yield line

    first, second = MemoryStorage(), MemoryStorage()
    assert len((await import_sessions(first.history, "".join(lines))).imported) == 2
    assert len((await import_sessions(second.history, agen())).imported) == 2


async def test_existing_sessions_are_skipped_never_overwritten() -> None:
    lines = await _export((await _filled()).history)
    target = MemoryStorage()
    await target.history.append_messages("s1", [Message(role="user", content="already here")])
    report = await import_sessions(target.history, lines)
    assert report.imported == ["s2"]
    assert list(report.skipped) == ["s1"]
    assert "exists" in report.skipped["s1"]
    assert [m.content for m in await target.history.get_history("s1")] == ["already here"]


async def test_empty_session_survives_the_trip() -> None:
    source = MemoryStorage()
    await source.history.append_messages("e", [Message(role="user", content="x")])
    await source.history.clear_history("e")
    target = MemoryStorage()
    report = await import_sessions(target.history, await _export(source.history))
    assert report.imported == ["e"]
    assert (await target.history.get_session("e")).message_count == 0


async def test_exporting_a_missing_session_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        await _export(MemoryStorage().history, ["nope"])
    with pytest.raises(UserError):
        await _export(MemoryStorage().history, ["../bad"])


def _session_line(session_id: str = "s1", **extra: Any) -> str:
    return json.dumps(
        {"type": "session", "id": session_id, "created_at": 1.0, "updated_at": 2.0, **extra}
    )


def _message_line(session_id: str = "s1", **extra: Any) -> str:
    return json.dumps(
        {"type": "message", "session_id": session_id, "role": "user", "content": "x", **extra}
    )


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "type"),
        (json.dumps({"type": "run"}), "type"),
        (_session_line("../etc"), "invalid session id"),
        (_session_line(created_at="yesterday"), "bad session"),
        (_session_line(), "already appeared"),
        (_message_line("s2", role="robot"), "bad message"),
        (_message_line("other"), "does not follow"),
    ],
)
async def test_a_bad_line_names_its_number_and_nothing_is_written(
    bad_line: str, problem: str
) -> None:
    lines = [_session_line(), _message_line(), "", _session_line("s2"), bad_line]
    history = MemoryHistoryStorage()
    with pytest.raises(UserError, match=problem) as caught:
        await import_sessions(history, lines)
    assert "line 5" in caught.value.message
    assert "nothing was imported" in caught.value.message
    assert await history.list_sessions() == []


async def test_a_message_before_any_session_is_refused() -> None:
    with pytest.raises(UserError, match="line 1"):
        await import_sessions(MemoryHistoryStorage(), [_message_line()])


class _PlainHistory(HistoryStorage):
    """A backend with only the base interface (no import hook), delegating to memory."""

    def __init__(self) -> None:
        self.inner = MemoryHistoryStorage()

    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        return await self.inner.get_history(session_id, limit)

    async def append_messages(self, session_id: str, messages: Any, *, owner: Any = None) -> None:
        await self.inner.append_messages(session_id, messages, owner=owner)

    async def clear_history(self, session_id: str) -> None:
        await self.inner.clear_history(session_id)

    async def truncate_history(self, session_id: str, keep: int) -> None:
        await self.inner.truncate_history(session_id, keep)

    async def get_session(self, session_id: str) -> SessionInfo:
        return await self.inner.get_session(session_id)

    async def list_sessions(
        self, *, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> list[SessionInfo]:
        return await self.inner.list_sessions(limit=limit, offset=offset, owner=owner)

    async def update_session(self, session_id: str, **kwargs: Any) -> SessionInfo:
        return await self.inner.update_session(session_id, **kwargs)

    async def delete_session(self, session_id: str) -> None:
        await self.inner.delete_session(session_id)


async def test_a_backend_without_the_hook_gets_messages_title_and_metadata() -> None:
    source = await _filled()
    await source.history.append_messages("empty", [Message(role="user", content="x")])
    await source.history.clear_history("empty")
    plain = _PlainHistory()
    report = await import_sessions(plain, await _export(source.history))
    assert isinstance(report, ImportReport)
    assert sorted(report.imported) == ["s1", "s2"]
    assert "without messages" in report.skipped["empty"]
    info = await plain.get_session("s1")
    assert (info.title, info.owner, info.metadata) == ("First", "alice", {"tag": "x"})
    assert await plain.get_history("s1") == await source.history.get_history("s1")
