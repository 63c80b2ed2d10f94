"""The schema, as append-only numbered migration steps recorded in ``chat_shell_migrations``.

Never edit or reorder a step that has shipped: databases in the wild were built by it. Change the
schema by appending a step. A database made by any earlier version upgrades in place; one made by
a newer version (a step this code does not know) is refused, never downgraded.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chat_shell import StorageError

from . import _search_index
from ._errors import corrupt_error

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "Migration",
    "check_current",
    "migrate",
]

MIGRATIONS_TABLE = "chat_shell_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    # Python run after the statements, in the same transaction, for what SQL alone cannot say.
    then: Callable[[sqlite3.Connection], None] | None = None


def _repair_search_index(conn: sqlite3.Connection) -> None:
    # Rebuilding reads only the messages, so it loses none of them; it costs seconds on a
    # million messages, so it runs only when the check (reads only, about two seconds on a
    # million messages) finds damage. (The check and the rebuild
    # live in _search_index; if a later step changes the index, freeze this step's own copy.)
    if _search_index.problems(conn):
        _search_index.rebuild(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "sessions and messages",
        (
            """
            CREATE TABLE sessions (
                id            TEXT PRIMARY KEY,
                title         TEXT,
                owner         TEXT,
                created_at    REAL NOT NULL,
                updated_at    REAL NOT NULL,
                message_count INTEGER NOT NULL DEFAULT 0,
                metadata      TEXT NOT NULL DEFAULT '{}'
            )
            """,
            "CREATE INDEX sessions_by_update ON sessions (updated_at DESC, id DESC)",
            "CREATE INDEX sessions_by_owner ON sessions (owner, updated_at DESC, id DESC)",
            # ``id`` is the rowid: always larger than every id before it, so it is the order of
            # messages within a session.
            """
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
            )
            """,
            "CREATE INDEX messages_by_session ON messages (session_id, id)",
        ),
    ),
    Migration(
        2,
        "full-text search over message content",
        (
            """
            CREATE VIRTUAL TABLE messages_fts USING fts5 (
                content, content = 'messages', content_rowid = 'id',
                tokenize = 'unicode61 remove_diacritics 2'
            )
            """,
            """
            CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
            WHEN new.content IS NOT NULL BEGIN
                INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
            END
            """,
            """
            CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
            WHEN old.content IS NOT NULL BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            END
            """,
            """
            CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                SELECT 'delete', old.id, old.content WHERE old.content IS NOT NULL;
                INSERT INTO messages_fts (rowid, content)
                SELECT new.id, new.content WHERE new.content IS NOT NULL;
            END
            """,
            "INSERT INTO messages_fts (rowid, content)"
            " SELECT id, content FROM messages WHERE content IS NOT NULL",
        ),
    ),
    # Indexing a message in its own append transaction cost more than the rest of the append
    # (FTS5 writes a new segment, and now and then merges them, on every commit). From this step
    # messages are indexed in batches: by an append once enough are waiting, and by every search,
    # which first indexes whatever is waiting under the write lock, so it never misses a message
    # whose append returned.
    Migration(
        3,
        "full-text search indexed in batches",
        (
            """
            CREATE TABLE messages_fts_state (
                id           INTEGER PRIMARY KEY CHECK (id = 1),
                indexed_upto INTEGER NOT NULL
            )
            """,
            # Every message up to here is in the search index (step 2 indexed all of them).
            "INSERT INTO messages_fts_state (id, indexed_upto)"
            " SELECT 1, coalesce(max(id), 0) FROM messages",
            "DROP TRIGGER messages_fts_insert",
            "DROP TRIGGER messages_fts_delete",
            "DROP TRIGGER messages_fts_update",
            # Only an indexed message has an index entry to remove. Deleting the newest messages
            # lets SQLite give their ids again (``INTEGER PRIMARY KEY`` is max + 1), so the mark
            # comes down to the newest message left: an id given again must be indexed again.
            # One trigger, in this order: the mark moves only after the entry is gone.
            """
            CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
            WHEN old.id <= (SELECT indexed_upto FROM messages_fts_state) BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                SELECT 'delete', old.id, old.content WHERE old.content IS NOT NULL;
                UPDATE messages_fts_state
                SET indexed_upto = (SELECT coalesce(max(id), 0) FROM messages)
                WHERE indexed_upto > (SELECT coalesce(max(id), 0) FROM messages);
            END
            """,
            """
            CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
            WHEN old.id <= (SELECT indexed_upto FROM messages_fts_state) BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                SELECT 'delete', old.id, old.content WHERE old.content IS NOT NULL;
                INSERT INTO messages_fts (rowid, content)
                SELECT new.id, new.content WHERE new.content IS NOT NULL;
            END
            """,
        ),
    ),
    # Step 3's delete trigger moved the mark only when it fired, that is for a message already
    # indexed. A delete whose last rows were still waiting (a session deleted or cleared while
    # its newest messages waited for the index) left the mark above the newest message; the next
    # messages then got ids below it, counted as indexed without being so (search missed them),
    # and deleting them sent FTS5 deletes for entries it never had, which corrupts the index
    # ("database disk image is malformed" on every later delete). From this step the trigger
    # fires for every deleted row and the mark comes down whenever a delete leaves it above the
    # newest message; files already damaged get their index rebuilt from the messages.
    Migration(
        4,
        "search index mark kept at or below the newest message; a damaged index rebuilt",
        (
            "DROP TRIGGER messages_fts_delete",
            """
            CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                SELECT 'delete', old.id, old.content
                WHERE old.content IS NOT NULL
                AND old.id <= (SELECT indexed_upto FROM messages_fts_state);
                UPDATE messages_fts_state
                SET indexed_upto = (SELECT coalesce(max(id), 0) FROM messages)
                WHERE indexed_upto > (SELECT coalesce(max(id), 0) FROM messages);
            END
            """,
        ),
        then=_repair_search_index,
    ),
    # Runs (chat_shell's run-store contract) in the same file as the history, so every process
    # that opens it shares one claim per session. A run's events are stored a batch per row
    # (``run_events``): one row per run per flush, not one per token. The text a live run has
    # said so far grows with every flush; each batch row carries only what was added
    # (``content_tail``, ``step_tail``; ``*_reset`` = 1 when the text starts over), so a flush
    # never rewrites a run's whole answer. ``runs.content`` holds the whole text once the run
    # has ended.
    Migration(
        5,
        "runs and their events",
        (
            """
            CREATE TABLE runs (
                run_id           TEXT PRIMARY KEY,
                session_id       TEXT NOT NULL,
                status           TEXT NOT NULL,
                holder           TEXT,
                owner            TEXT,
                stores_history   INTEGER NOT NULL DEFAULT 1,
                created_at       REAL NOT NULL,
                finished_at      REAL,
                lease_expires_at REAL,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                last_seq         INTEGER NOT NULL DEFAULT -1,
                event_bytes      INTEGER NOT NULL DEFAULT 0,
                summary          TEXT NOT NULL,
                content          TEXT NOT NULL DEFAULT '',
                step_content     TEXT NOT NULL DEFAULT ''
            )
            """,
            # The one-run-per-session rule, kept by the database for every process.
            "CREATE UNIQUE INDEX runs_one_per_session ON runs (session_id)"
            " WHERE status IN ('queued', 'running')",
            "CREATE INDEX runs_by_lease ON runs (lease_expires_at)"
            " WHERE status IN ('queued', 'running')",
            "CREATE INDEX runs_by_finish ON runs (finished_at) WHERE finished_at IS NOT NULL",
            "CREATE INDEX runs_cancelled ON runs (holder)"
            " WHERE cancel_requested = 1 AND status IN ('queued', 'running')",
            """
            CREATE TABLE run_events (
                id            INTEGER PRIMARY KEY,
                run_id        TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
                first_seq     INTEGER NOT NULL,
                last_seq      INTEGER NOT NULL,
                events        BLOB,
                content_tail  TEXT,
                content_reset INTEGER NOT NULL DEFAULT 0,
                step_tail     TEXT,
                step_reset    INTEGER NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX run_events_by_run ON run_events (run_id, last_seq)",
        ),
    ),
    # The answers to tool calls waiting for approval: one per call, the first one wins.
    Migration(
        6,
        "approval answers",
        (
            """
            CREATE TABLE run_approvals (
                run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
                call_id     TEXT NOT NULL,
                approved    INTEGER NOT NULL,
                answered_at REAL NOT NULL,
                PRIMARY KEY (run_id, call_id)
            )
            """,
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    return {row[0] for row in rows}


def _applied(conn: sqlite3.Connection, path: Path) -> set[int] | None:
    """Versions already applied; ``None`` for a database with no tables at all."""
    tables = _tables(conn)
    if not tables:
        return None
    if MIGRATIONS_TABLE not in tables:
        raise StorageError(
            f"{path} is a SQLite database but not a chat-shell history (it has no"
            f" {MIGRATIONS_TABLE} table); chat-shell left it untouched: choose another storage path"
        )
    rows = conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")  # noqa: S608
    versions = [row[0] for row in rows]
    # Every version of chat-shell-sqlite applies its steps in order, in one transaction: the
    # table holds exactly 1, 2, … n. Anything else is damage, not a newer version.
    if not versions or versions != list(range(1, len(versions) + 1)):
        shown = ", ".join(str(version) for version in versions[:10]) or "none"
        raise corrupt_error(
            path, f"its {MIGRATIONS_TABLE} table records the steps {shown}, not 1, 2, … n"
        )
    if versions[-1] > LATEST_VERSION:
        # A damaged page can still hold a well-ordered table; a real newer file passes the check.
        checked = [str(row[0]) for row in conn.execute("PRAGMA quick_check(10)")]
        if checked != ["ok"]:
            raise corrupt_error(path, "; ".join(checked))
        from . import __version__

        raise StorageError(
            f"{path} was written by a newer chat-shell-sqlite (schema version {versions[-1]};"
            f" this chat-shell-sqlite {__version__} knows up to {LATEST_VERSION}); upgrade it with"
            " `pip install -U chat-shell-sqlite`. The file was left untouched."
        )
    return set(versions)


def check_current(conn: sqlite3.Connection, path: Path, why: str) -> None:
    """For a connection that may not write (``why`` says why): the file must need no step."""
    applied = _applied(conn, path)
    if applied is None:
        raise StorageError(
            f"{path} is an empty file, not a chat-shell history yet, and it is open read-only"
            f" ({why}), so chat-shell cannot set it up"
        )
    if len(applied) < LATEST_VERSION:
        raise StorageError(
            f"{path} is at schema version {len(applied)} and this chat-shell-sqlite needs"
            f" {LATEST_VERSION}; upgrading writes to the file, and it is open read-only ({why}):"
            " make it writable and open it once"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> list[int]:
    """Apply the steps this database lacks, in one ``BEGIN IMMEDIATE`` transaction.

    Returns the versions applied. Safe when several processes open a new file at once: the
    write lock serialises them and the second finds nothing left to do.
    """
    applied = _applied(conn, path)
    if applied is not None and all(m.version in applied for m in MIGRATIONS):
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = _applied(conn, path) or set()
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = []
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            if migration.then is not None:
                migration.then(conn)
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",  # noqa: S608
                (migration.version, migration.name, time.time()),
            )
            done.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return done
