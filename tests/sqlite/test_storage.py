"""What the SQLite backend adds beyond the conformance suite, and how it meets bad input."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from chat_shell import (
    JSONStorage,
    Message,
    StorageError,
    ToolCall,
    UserError,
    available_storage,
    export_sessions,
    import_sessions,
)
from chat_shell_sqlite import SCHEMA_VERSION, SQLiteHistoryStorage, SQLiteStorage
from chat_shell_sqlite._search_index import FTS_BATCH
from sqlite_support import assert_search_index_sound, query


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest_asyncio.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(path=tmp_path / "history.db") as storage:
        yield storage


@pytest.fixture
def history(storage: SQLiteStorage) -> SQLiteHistoryStorage:
    return storage.history


def test_registered_through_the_entry_point() -> None:
    assert "sqlite" in available_storage()


# -- files ---------------------------------------------------------------------------------------


async def test_database_wal_and_shm_are_0600_and_missing_folders_0700(tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "history.db"
    async with SQLiteStorage(path=db) as storage:
        await storage.history.append_messages("s", [Message(role="user", content="x")])
        assert _mode(tmp_path / "new") == 0o700
        assert _mode(tmp_path / "new" / "deeper") == 0o700
        for name in ("history.db", "history.db-wal", "history.db-shm"):
            assert _mode(db.parent / name) == 0o600, name
        assert query(db, "PRAGMA journal_mode") == [("wal",)]


async def test_default_path_is_in_the_chat_shell_home(tmp_path: Path) -> None:
    # tests/conftest.py points CHAT_SHELL_HOME at a fresh folder
    storage = SQLiteStorage()
    assert storage.path.name == "history.db"
    assert storage.path.parent == Path(os.environ["CHAT_SHELL_HOME"])


async def test_two_storages_on_one_file_in_one_process(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as cli, SQLiteStorage(path=db) as server:
        await cli.history.append_messages("s", [Message(role="user", content="from cli")])
        await server.history.append_messages("s", [Message(role="user", content="from server")])
        for side in (cli, server):
            stored = await side.history.get_history("s")
            assert [m.content for m in stored] == ["from cli", "from server"]


async def test_closed_storage_says_so(tmp_path: Path) -> None:
    storage = SQLiteStorage(path=tmp_path / "history.db")
    with pytest.raises(StorageError, match="not initialized"):
        _ = storage.history
    await storage.initialize()
    history = storage.history
    await storage.close()
    await storage.close()
    with pytest.raises(StorageError, match="closed"):
        await history.get_history("s")


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="synchronous"):
        SQLiteStorage(synchronous="off")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="busy_timeout"):
        SQLiteStorage(busy_timeout=-1)


async def test_synchronous_full_is_available(tmp_path: Path) -> None:
    async with SQLiteStorage(path=tmp_path / "h.db", synchronous="full") as storage:
        await storage.history.append_messages("s", [Message(role="user", content="x")])
        assert len(await storage.history.get_history("s")) == 1


# -- schema --------------------------------------------------------------------------------------


async def test_schema_holds_a_faithful_replay(
    storage: SQLiteStorage, history: SQLiteHistoryStorage
) -> None:
    turn = [
        Message(role="system", content="be brief"),
        Message(role="user", content="sum?", metadata={"nested": {"list": [1, 2.5, None]}}),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c1", name="calc", arguments={"e": "1+1"})],
            metadata={"model": "openai/m", "usage": {"total_tokens": 9}, "status": "completed"},
        ),
        Message(role="tool", content="2", tool_call_id="c1", name="calc"),
        Message(role="assistant", content="", tool_calls=[], metadata={"latency_ms": 12.5}),
    ]
    await history.append_messages("s", turn, owner="alice")
    assert [m.model_dump() for m in await history.get_history("s")] == [
        m.model_dump() for m in turn
    ]
    rows = query(storage.path, "SELECT role, tool_call_id, name FROM messages ORDER BY id")
    assert rows[3] == ("tool", "c1", "calc")
    assert query(storage.path, "SELECT owner, message_count FROM sessions") == [("alice", 5)]


async def test_indexes_serve_history_and_session_listing(storage: SQLiteStorage) -> None:
    history_plan = query(
        storage.path,
        "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE session_id = 's' ORDER BY id",
    )
    assert "messages_by_session" in str(history_plan)
    assert "TEMP B-TREE" not in str(history_plan)
    listing_plan = query(
        storage.path,
        "EXPLAIN QUERY PLAN SELECT * FROM sessions ORDER BY updated_at DESC, id DESC LIMIT 50",
    )
    assert "sessions_by_update" in str(listing_plan)
    assert "TEMP B-TREE" not in str(listing_plan)


async def test_delete_cascades_to_messages_and_search(
    storage: SQLiteStorage, history: SQLiteHistoryStorage
) -> None:
    await history.append_messages("gone", [Message(role="user", content="zebra crossing")])
    await history.append_messages("kept", [Message(role="user", content="zebra stripes")])
    await history.delete_session("gone")
    assert query(storage.path, "SELECT count(*) FROM messages") == [(1,)]
    assert [hit.session_id for hit in await history.search("zebra")] == ["kept"]
    await history.clear_history("kept")
    assert await history.search("zebra") == []
    assert await history.integrity_check() == "ok"


# -- beyond the base interface ------------------------------------------------------------------


async def test_list_sessions_pages_newest_first_and_titles(history: SQLiteHistoryStorage) -> None:
    for n in range(7):
        await history.append_messages(f"s{n}", [Message(role="user", content=str(n))])
    await history.update_session("s2", title="Second")
    pages = [await history.list_sessions(limit=3, offset=o) for o in (0, 3, 6)]
    assert [[s.id for s in page] for page in pages] == [
        ["s2", "s6", "s5"],
        ["s4", "s3", "s1"],
        ["s0"],
    ]
    assert pages[0][0].title == "Second"
    with pytest.raises(UserError):
        await history.list_sessions(limit=-1)


async def test_update_session_merges_metadata(history: SQLiteHistoryStorage) -> None:
    await history.append_messages("s", [Message(role="user", content="x")])
    await history.update_session("s", metadata={"a": 1})
    info = await history.update_session("s", metadata={"b": 2})
    assert info.metadata == {"a": 1, "b": 2}
    assert (await history.get_session("s")).metadata == {"a": 1, "b": 2}


async def test_search(storage: SQLiteStorage, history: SQLiteHistoryStorage) -> None:
    await history.append_messages(
        "s1",
        [
            Message(role="user", content="How do I bake sourdough bread?"),
            Message(role="assistant", content="Feed the starter, then bake at 250 °C."),
        ],
        owner="alice",
    )
    await history.append_messages(
        "s2", [Message(role="user", content="Café opening hours")], owner="bob"
    )
    hits = await storage.search("bake")
    assert {hit.message.content for hit in hits} == {
        "How do I bake sourdough bread?",
        "Feed the starter, then bake at 250 °C.",
    }
    assert all("**bake**" in hit.snippet for hit in hits)
    assert [h.message.content for h in await history.search("SOURDOUGH bread")] == [
        "How do I bake sourdough bread?"
    ]
    assert [h.session_id for h in await history.search("cafe")] == ["s2"]  # accents ignored
    assert await history.search("bake", owner="bob") == []
    assert await history.search("bake", session_id="s2") == []
    assert len(await history.search("bake", limit=1)) == 1
    # FTS5 syntax in the text is taken literally, never an error
    assert await history.search('bread" OR * -NEAR(') == []
    with pytest.raises(UserError):
        await history.search("  -- ")


def _mark(db: Path) -> tuple[object, ...]:
    """(the search index mark, the newest message id)."""
    rows = query(db, "SELECT indexed_upto, (SELECT max(id) FROM messages) FROM messages_fts_state")
    return rows[0]


async def test_search_indexes_what_waits_before_it_looks(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as mine, SQLiteStorage(path=db) as other:
        await mine.history.append_messages("a", [Message(role="user", content="alpha one")])
        await other.history.append_messages("b", [Message(role="user", content="alpha two")])
        assert _mark(db) == (0, 2)  # appended, not indexed yet
        # one storage finds what the other appended: the search indexed it first
        hits = await mine.search("alpha")
        assert sorted(h.session_id for h in hits) == ["a", "b"]
        assert _mark(db) == (2, 2)
        await other.history.append_messages("b", [Message(role="user", content="alpha three")])
        assert len(await mine.search("alpha")) == 3
        assert_search_index_sound(db)


async def test_an_append_indexes_once_a_batch_waits(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        for n in range(FTS_BATCH - 1):
            await history.append_messages("s", [Message(role="user", content=f"word{n}")])
        assert _mark(db) == (0, FTS_BATCH - 1)
        await history.append_messages("s", [Message(role="user", content="last")])
        assert _mark(db) == (FTS_BATCH, FTS_BATCH)
        # an import adds many at once: indexed in the same transaction
        lines = [line async for line in storage.export_sessions()]
        async with SQLiteStorage(path=tmp_path / "copy.db") as copy:
            await copy.import_sessions(lines)
            assert _mark(tmp_path / "copy.db") == (FTS_BATCH, FTS_BATCH)
            assert [h.message.content for h in await copy.search("word7")] == ["word7"]
        assert_search_index_sound(db)


async def test_ids_given_again_after_deleting_the_newest_are_indexed(tmp_path: Path) -> None:
    # INTEGER PRIMARY KEY gives max(id) + 1: deleting the newest messages frees their ids, so
    # the search mark must come down, or a new message could hide below it.
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        await history.append_messages("keep", [Message(role="user", content="kept words")])
        await history.append_messages("gone", [Message(role="user", content="zebra")] * 3)
        assert [h.session_id for h in await history.search("zebra")] == ["gone"] * 3
        assert _mark(db) == (4, 4)
        await history.delete_session("gone")  # indexed, and the newest
        assert _mark(db) == (1, 1)
        await history.append_messages("new", [Message(role="user", content="okapi")])
        assert _mark(db) == (1, 2)  # id 2 again, waiting for the index
        assert [h.session_id for h in await history.search("okapi")] == ["new"]
        assert await history.search("zebra") == []
        # deleting messages not indexed yet: nothing to take out of the index
        await history.append_messages("late", [Message(role="user", content="quokka")])
        await history.clear_history("late")
        assert await history.search("quokka") == []
        await history.append_messages("late", [Message(role="user", content="quokka again")])
        assert [h.message.content for h in await history.search("quokka")] == ["quokka again"]
        assert_search_index_sound(db)
        assert await history.integrity_check() == "ok"


async def test_export_and_import_between_sqlite_and_json(tmp_path: Path) -> None:
    turn = [
        Message(role="user", content="hi"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c", name="t", arguments={})],
            metadata={"model": "m"},
        ),
        Message(role="tool", content="ok", tool_call_id="c", name="t"),
    ]
    async with SQLiteStorage(path=tmp_path / "a.db") as source:
        await source.history.append_messages("s1", turn, owner="k")
        await source.history.update_session("s1", title="T", metadata={"x": 1})
        lines = [line async for line in source.export_sessions()]
        original = await source.history.get_session("s1")
    assert len(lines) == 4

    async with JSONStorage(path=tmp_path / "json") as middle:
        report = await import_sessions(middle.history, lines)
        assert report.imported == ["s1"]
        lines_again = [line async for line in export_sessions(middle.history)]
    assert lines_again == lines

    async with SQLiteStorage(path=tmp_path / "b.db") as target:
        await target.history.append_messages("s0", [Message(role="user", content="mine")])
        report = await target.import_sessions("".join(lines_again))
        assert report.imported == ["s1"]
        assert report.messages == 3
        assert await target.history.get_session("s1") == original
        assert [m.model_dump() for m in await target.history.get_history("s1")] == [
            m.model_dump() for m in turn
        ]
        again = await target.import_sessions(lines)
        assert again.imported == []
        assert list(again.skipped) == ["s1"]
        assert len(await target.history.get_history("s1")) == 3
        assert [h.session_id for h in await target.search("hi")] == ["s1"]


# -- bad input -----------------------------------------------------------------------------------


async def _open_fails(path: Path, match: str) -> StorageError:
    storage = SQLiteStorage(path=path)
    with pytest.raises(StorageError, match=match) as caught:
        await storage.initialize()
    await storage.close()
    assert str(path) in str(caught.value)
    return caught.value


async def test_a_file_that_is_not_sqlite_is_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    db.write_text("my notes, not a database\n" * 10)
    await _open_fails(db, "not a SQLite database")
    assert db.read_text() == "my notes, not a database\n" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.db"]


async def test_another_apps_sqlite_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    await _open_fails(db, "not a chat-shell history")
    assert query(db, "SELECT name FROM sqlite_master") == [("notes",)]


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        await storage.history.append_messages("s", [Message(role="user", content="keep me")])
    newer = SCHEMA_VERSION + 1
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO chat_shell_migrations VALUES (?, 'from the future', 0)", (newer,))
        conn.commit()
    error = await _open_fails(db, "newer chat-shell-sqlite")
    assert "upgrade" in str(error)
    assert query(db, "SELECT content FROM messages") == [("keep me",)]


async def test_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage:
        for n in range(50):
            await storage.history.append_messages(
                f"s{n}", [Message(role="user", content="x" * 500)]
            )
    size = db.stat().st_size
    with db.open("r+b") as handle:  # keep the header, scribble over everything after it
        handle.seek(100)
        handle.write(b"\xa5" * (size - 100))
    error = await _open_fails(db, "corrupt")
    assert ".recover" in str(error)
    assert db.stat().st_size == size


async def test_a_folder_is_not_a_database(tmp_path: Path) -> None:
    await _open_fails(tmp_path, "is a folder")


async def test_a_file_in_the_way_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="not a folder"):
        await SQLiteStorage(path=tmp_path / "file" / "history.db").initialize()


_READ_ONLY_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from chat_shell import StorageError
    from chat_shell_sqlite import SQLiteStorage

    if os.geteuid() == 0:  # root writes anywhere: become "nobody" once everything is imported
        os.setgid(65534)
        os.setuid(65534)

    async def main():
        storage = SQLiteStorage(path=sys.argv[1])
        try:
            await storage.initialize()
        except StorageError as exc:
            print(exc)
            return 0
        finally:
            await storage.close()
        print("opened")
        return 1

    sys.exit(asyncio.run(main()))
    """
)


def test_a_read_only_folder_is_a_clear_error() -> None:
    # In a child process, which drops root to "nobody" (root would write anywhere).
    base = Path(tempfile.mkdtemp(prefix="chat-shell-ro-"))
    try:
        base.chmod(0o755)
        folder = base / "ro"
        folder.mkdir(mode=0o555)
        folder.chmod(0o555)
        db = folder / "history.db"
        result = subprocess.run(
            [sys.executable, "-c", _READ_ONLY_SCRIPT, str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert str(db) in result.stdout
        assert "not writable" in result.stdout
        assert not db.exists()
    finally:
        (base / "ro").chmod(0o755)
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        base.rmdir()
