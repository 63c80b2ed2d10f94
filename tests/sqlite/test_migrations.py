"""Migrations: append-only numbered steps; a database from an earlier version upgrades in place."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from chat_shell import Message
from chat_shell_sqlite import SCHEMA_VERSION, SQLiteStorage
from chat_shell_sqlite._migrations import MIGRATIONS, MIGRATIONS_TABLE
from sqlite_support import assert_search_index_sound, query

# What version 1 of chat-shell-sqlite created, frozen here on purpose: the test must keep
# building the old database even after the code's migration steps grow.
V1_SCHEMA = """
CREATE TABLE chat_shell_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    title         TEXT,
    owner         TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    metadata      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_by_update ON sessions (updated_at DESC, id DESC);
CREATE INDEX sessions_by_owner ON sessions (owner, updated_at DESC, id DESC);
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content      TEXT,
    tool_calls   TEXT,
    tool_call_id TEXT,
    name         TEXT,
    timestamp    REAL NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX messages_by_session ON messages (session_id, id);
INSERT INTO chat_shell_migrations VALUES (1, 'sessions and messages', 1700000000.0);
INSERT INTO sessions VALUES ('old', 'Old chat', 'alice', 1700000000.0, 1700000100.0, 3, '{"k": 1}');
INSERT INTO messages VALUES
    (1, 'old', 'user', 'What is the capital of Portugal?', NULL, NULL, NULL, 1700000000.0, '{}'),
    (2, 'old', 'assistant', NULL,
     '[{"id":"c1","name":"lookup","arguments":{"q":"Portugal"}}]', NULL, NULL, 1700000050.0,
     '{"model":"openai/m","status":"completed"}'),
    (3, 'old', 'tool', 'Lisbon', NULL, 'c1', 'lookup', 1700000100.0, '{}');
"""


# What version 2 added (full-text search kept by triggers, one message per append), frozen too.
V2_STEP = """
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content, content = 'messages', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.content IS NOT NULL BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.content IS NOT NULL BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    SELECT 'delete', old.id, old.content WHERE old.content IS NOT NULL;
    INSERT INTO messages_fts (rowid, content)
    SELECT new.id, new.content WHERE new.content IS NOT NULL;
END;
INSERT INTO messages_fts (rowid, content)
    SELECT id, content FROM messages WHERE content IS NOT NULL;
INSERT INTO chat_shell_migrations VALUES (2, 'full-text search over message content', 1700000001.0);
-- written by version 2, so indexed by its trigger
INSERT INTO sessions VALUES ('v2', NULL, NULL, 1700000200.0, 1700000300.0, 2, '{}');
INSERT INTO messages VALUES
    (4, 'v2', 'user', 'Tell me about Porto', NULL, NULL, NULL, 1700000200.0, '{}'),
    (5, 'v2', 'assistant', 'Porto is on the Douro', NULL, NULL, NULL, 1700000300.0, '{}');
"""


def _v1_database(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(V1_SCHEMA)


def _versions(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")
        return [row[0] for row in rows]


def test_steps_are_numbered_1_to_n() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


async def test_a_new_database_gets_every_step(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db):
        pass
    assert _versions(db) == list(range(1, SCHEMA_VERSION + 1))


async def test_a_v1_database_upgrades_in_place_keeping_its_data(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    _v1_database(db)
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        info = await history.get_session("old")
        assert (info.title, info.owner, info.message_count) == ("Old chat", "alice", 3)
        assert info.updated_at == 1700000100.0
        old = await history.get_history("old")
        assert [m.role for m in old] == ["user", "assistant", "tool"]
        assert old[1].tool_calls is not None
        assert old[1].tool_calls[0].arguments == {"q": "Portugal"}
        # search, added by a later step, covers what was there before it
        assert [h.message.content for h in await history.search("lisbon")] == ["Lisbon"]
        await history.append_messages("old", [Message(role="user", content="And Spain?")])
        assert [h.session_id for h in await history.search("spain")] == ["old"]
        assert await history.integrity_check() == "ok"
    assert _versions(db) == list(range(1, SCHEMA_VERSION + 1))
    async with SQLiteStorage(path=db) as storage:  # and opening again changes nothing
        assert len(await storage.history.get_history("old")) == 4
    assert _versions(db) == list(range(1, SCHEMA_VERSION + 1))


async def test_a_v2_database_upgrades_in_place_and_keeps_search_whole(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    _v1_database(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(V2_STEP)
    assert _versions(db) == [1, 2]
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        # what version 2 indexed is still found, and marked as indexed
        assert [h.session_id for h in await history.search("douro")] == ["v2"]
        assert [h.session_id for h in await history.search("lisbon")] == ["old"]
        await history.append_messages("v2", [Message(role="user", content="And the Douro wine?")])
        hits = await history.search("douro")
        assert sorted(h.message.content or "" for h in hits) == [
            "And the Douro wine?",
            "Porto is on the Douro",
        ]
        # removing messages version 2 indexed takes them out of search
        await history.delete_session("v2")
        assert await history.search("douro") == []
        assert [h.session_id for h in await history.search("lisbon")] == ["old"]
        assert await history.integrity_check() == "ok"
    assert _versions(db) == list(range(1, SCHEMA_VERSION + 1))
    assert_search_index_sound(db)


# -- step 4: the search index bookkeeping, and the repair of files step 3 damaged -----------------


def _v3_database(path: Path) -> sqlite3.Connection:
    """A database as version 3 made it: steps 1 to 3 exactly as they shipped (shipped steps are
    never edited), with version 3's delete trigger."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        f"CREATE TABLE {MIGRATIONS_TABLE} ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for migration in MIGRATIONS[:3]:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, 0)",
            (migration.version, migration.name),
        )
    return conn


def _v3_append(conn: sqlite3.Connection, session_id: str, contents: list[str]) -> None:
    """What version 3's append did: insert, and index once 256 messages wait."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO sessions (id, created_at, updated_at, message_count) VALUES (?, 0, 0, ?)"
        " ON CONFLICT (id) DO UPDATE SET message_count = message_count + excluded.message_count",
        (session_id, len(contents)),
    )
    conn.executemany(
        "INSERT INTO messages (session_id, role, content, timestamp) VALUES (?, 'user', ?, 0)",
        [(session_id, content) for content in contents],
    )
    mark, newest = conn.execute(
        "SELECT indexed_upto, (SELECT max(id) FROM messages) FROM messages_fts_state"
    ).fetchone()
    if newest - mark >= 256:
        _v3_index(conn)
    conn.execute("COMMIT")


def _v3_index(conn: sqlite3.Connection) -> None:
    """What version 3's search did first: index whatever waits."""
    mark, newest = conn.execute(
        "SELECT indexed_upto, coalesce((SELECT max(id) FROM messages), 0) FROM messages_fts_state"
    ).fetchone()
    if newest <= mark:
        return
    conn.execute(
        "INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages"
        " WHERE id > ? AND id <= ? AND content IS NOT NULL",
        (mark, newest),
    )
    conn.execute("UPDATE messages_fts_state SET indexed_upto = ?", (newest,))


def _every_message(path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT session_id, role, content, timestamp FROM messages ORDER BY session_id, id"
        ).fetchall()


def _words(n: int, word: str) -> list[str]:
    return [f"{word} item{i}" for i in range(n)]


async def _assert_repaired(db: Path, before: list[tuple[object, ...]]) -> None:
    async with SQLiteStorage(path=db) as storage:
        assert await storage.history.integrity_check() == "ok"
    assert _versions(db) == list(range(1, SCHEMA_VERSION + 1))
    assert _every_message(db) == before  # not one message lost or changed
    assert_search_index_sound(db)
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        sessions = {info.id for info in await history.list_sessions(limit=1000)}
        for session_id in sessions:  # every message is found by its words
            for message in await history.get_history(session_id):
                hits = await storage.search(message.content or "", session_id=session_id)
                assert message.content in [hit.message.content for hit in hits]
        for session_id in sorted(sessions):  # and every delete works again
            await history.delete_session(session_id)
        assert await history.integrity_check() == "ok"
    assert_search_index_sound(db)


async def test_the_damage_of_the_four_calls_is_repaired(tmp_path: Path) -> None:
    # The report's four calls, as version 3 ran them: 256 messages to a session, 1 more,
    # delete it, 2 messages to a second session; deleting that one then fails.
    db = tmp_path / "history.db"
    with contextlib.closing(_v3_database(db)) as conn:
        _v3_append(conn, "first", _words(256, "alpha"))
        _v3_append(conn, "first", ["beta"])
        conn.execute("DELETE FROM sessions WHERE id = 'first'")
        _v3_append(conn, "second", _words(2, "gamma"))
        assert conn.execute("SELECT indexed_upto FROM messages_fts_state").fetchone() == (256,)
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):
            conn.execute("DELETE FROM sessions WHERE id = 'second'")
    before = _every_message(db)
    assert len(before) == 2
    await _assert_repaired(db, before)


async def test_a_file_damaged_in_ordinary_use_is_repaired(tmp_path: Path) -> None:
    # One user: a session searched (so indexed), one more message, the session deleted while
    # that one waited; the next messages counted as indexed without being so (search misses
    # them), and deleting one of them sent a delete for an entry the index never had. That
    # delete "succeeded" (other documents kept the index's count above zero), and left the
    # count wrong: a later delete fails once it reaches zero.
    db = tmp_path / "history.db"
    with contextlib.closing(_v3_database(db)) as conn:
        _v3_append(conn, "kept", _words(3, "kept"))
        _v3_append(conn, "old", _words(5, "old"))
        _v3_index(conn)
        _v3_append(conn, "old", ["old waiting"])
        conn.execute("DELETE FROM sessions WHERE id = 'old'")
        _v3_append(conn, "unfound", _words(4, "unfound"))
        _v3_index(conn)  # a search: nothing to index, the mark is above the newest message
        _v3_append(conn, "gone", ["gone soon"])
        conn.execute("DELETE FROM sessions WHERE id = 'gone'")
        unfound = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'unfound'"
        assert conn.execute(unfound).fetchone() == (0,)
        _v3_append(conn, "kept", ["kept too"])
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):
            conn.execute("DELETE FROM sessions WHERE id = 'kept'")
    before = _every_message(db)
    assert len(before) == 8
    await _assert_repaired(db, before)


async def test_a_sound_version_3_file_keeps_its_index(tmp_path: Path) -> None:
    # The check finds nothing to repair, so nothing is rebuilt: messages waiting for the index
    # still wait (a rebuild would have indexed them).
    db = tmp_path / "history.db"
    with contextlib.closing(_v3_database(db)) as conn:
        _v3_append(conn, "a", _words(300, "many"))
        conn.execute("DELETE FROM sessions WHERE id = 'a'")  # every one indexed: mark comes down
        _v3_append(conn, "b", _words(10, "few"))
        _v3_index(conn)
        _v3_append(conn, "b", _words(7, "waiting"))
        mark = conn.execute("SELECT indexed_upto FROM messages_fts_state").fetchone()
        data = conn.execute("SELECT * FROM messages_fts_data ORDER BY id").fetchall()
    async with SQLiteStorage(path=db) as storage:
        assert _versions(db) == list(range(1, SCHEMA_VERSION + 1))
        assert query(db, "SELECT indexed_upto FROM messages_fts_state") == [mark]
        assert query(db, "SELECT * FROM messages_fts_data ORDER BY id") == data
        assert len(await storage.search("waiting")) == 7
        assert len(await storage.search("few")) == 10
    assert_search_index_sound(db)
