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
