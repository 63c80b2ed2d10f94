"""Migrations: append-only numbered steps; a database from an earlier version upgrades in place."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from chat_shell import Message
from chat_shell_sqlite import SCHEMA_VERSION, SQLiteStorage
from chat_shell_sqlite._migrations import MIGRATIONS, MIGRATIONS_TABLE

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


def fts_consistent(path: Path) -> None:
    """The search index holds exactly the messages with content up to its mark, and is sound."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        indexed = conn.execute("SELECT id FROM messages_fts_docsize ORDER BY id").fetchall()
        expected = conn.execute(
            "SELECT id FROM messages WHERE content IS NOT NULL"
            " AND id <= (SELECT indexed_upto FROM messages_fts_state) ORDER BY id"
        ).fetchall()
    assert indexed == expected


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
    fts_consistent(db)
