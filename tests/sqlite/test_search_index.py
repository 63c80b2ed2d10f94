"""The search index bookkeeping: no sequence of writes may put it out of step with the messages.

The index mark (``messages_fts_state.indexed_upto``) says which messages are in the full-text
index. These are the sequences that once left it above the newest message, so that SQLite's
next ids counted as indexed although they were not: search missed them, and deleting them
sent the index deletes for entries it never had ("database disk image is malformed").
"""

from __future__ import annotations

from pathlib import Path

from chat_shell import Message
from chat_shell_sqlite import SQLiteStorage
from chat_shell_sqlite._search_index import FTS_BATCH
from sqlite_support import assert_search_index_sound


def _messages(word: str, count: int) -> list[Message]:
    return [Message(role="user", content=f"{word} number{n}") for n in range(count)]


async def test_the_four_storage_calls_of_the_report(tmp_path: Path) -> None:
    # 256 messages to a session (indexed by the append that makes the batch), 1 more (waiting),
    # delete the session, 2 messages to a second session, delete that one.
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        await history.append_messages("first", _messages("alpha", FTS_BATCH))
        await history.append_messages("first", _messages("beta", 1))
        await history.delete_session("first")
        await history.append_messages("second", _messages("gamma", 2))
        assert len(await storage.search("gamma")) == 2
        await history.delete_session("second")
        assert_search_index_sound(db)
        # and every later clear or delete still works
        await history.append_messages("third", _messages("delta", 3))
        await history.clear_history("third")
        await history.append_messages("third", _messages("delta", 1))
        await history.delete_session("third")
        assert await history.integrity_check() == "ok"
        assert_search_index_sound(db)


async def test_deleting_the_newest_session_while_messages_wait_for_the_index(
    tmp_path: Path,
) -> None:
    # One user, one process: a search indexes a session, one more message waits, the session
    # is deleted; the next session's messages must be found, and deletable.
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        await history.append_messages("old", _messages("older", 3))
        assert len(await storage.search("older")) == 3
        await history.append_messages("old", _messages("older", 1))  # waits for the index
        await history.delete_session("old")
        assert_search_index_sound(db)
        await history.append_messages("new", _messages("newer", 2))
        hits = await storage.search("newer")
        assert sorted(hit.message.content or "" for hit in hits) == [
            "newer number0",
            "newer number1",
        ]
        await history.delete_session("new")
        assert await storage.search("newer") == []
        assert_search_index_sound(db)


async def test_clearing_a_session_whose_newest_messages_wait(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        await history.append_messages("kept", _messages("kept", 2))
        await history.append_messages("cleared", _messages("cleared", 2))
        assert len(await storage.search("cleared")) == 2
        await history.append_messages("cleared", _messages("cleared", 2))
        await history.clear_history("cleared")
        await history.append_messages("cleared", _messages("again", 3))
        assert len(await storage.search("again")) == 3
        await history.clear_history("cleared")
        assert [hit.session_id for hit in await storage.search("kept")] == ["kept", "kept"]
        assert_search_index_sound(db)
