"""The schema: append-only numbered steps, each recorded in ``chat_shell_schema``.

Every process opening the database runs ``migrate``; the steps run under an advisory lock, so
when many instances start at once one of them migrates and the others wait and find it done.
A step, once released, is never edited: a change is a new step.
"""

from __future__ import annotations

import psycopg
from chat_shell import StorageError

__all__ = ["LATEST_VERSION", "MIGRATION_LOCK", "STEPS", "migrate"]

# pg_advisory_lock key of the migrations (any constant; it only has to be the same everywhere)
MIGRATION_LOCK = 0x63_68_61_74_73_68_01  # "chatsh" 1

STEPS: tuple[tuple[str, str], ...] = (
    (
        "sessions and messages, with full-text search",
        """
        CREATE TABLE chat_shell_sessions (
            id text PRIMARY KEY,
            title text,
            owner text,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            message_count integer NOT NULL DEFAULT 0,
            metadata text NOT NULL DEFAULT '{}'
        );
        CREATE INDEX chat_shell_sessions_recent ON chat_shell_sessions (updated_at DESC, id DESC);
        CREATE INDEX chat_shell_sessions_owner
            ON chat_shell_sessions (owner, updated_at DESC, id DESC);
        CREATE TABLE chat_shell_messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_id text NOT NULL REFERENCES chat_shell_sessions (id) ON DELETE CASCADE,
            role text NOT NULL,
            content text,
            -- content holding U+0000 (which PostgreSQL's text cannot) is stored JSON-encoded
            content_encoded boolean NOT NULL DEFAULT false,
            tool_calls text,
            tool_call_id text,
            name text,
            timestamp double precision NOT NULL,
            metadata text NOT NULL,
            -- the words of the content, case and accents folded by chat-shell before indexing
            words tsvector
        );
        CREATE INDEX chat_shell_messages_session ON chat_shell_messages (session_id, id);
        CREATE INDEX chat_shell_messages_words ON chat_shell_messages USING gin (words);
        """,
    ),
    (
        "runs and their events",
        """
        CREATE TABLE chat_shell_runs (
            run_id text PRIMARY KEY,
            session_id text NOT NULL,
            holder text,
            done boolean NOT NULL DEFAULT false,
            finished_at double precision,
            lease_expires_at double precision,
            cancel_requested boolean NOT NULL DEFAULT false,
            last_seq integer NOT NULL DEFAULT -1,
            event_bytes bigint NOT NULL DEFAULT 0,
            -- the rest of the run's summary (RunInfo) as JSON; the columns above win over it
            info text NOT NULL
        );
        -- one run in progress per session, enforced here, whichever process or machine asks
        CREATE UNIQUE INDEX chat_shell_runs_one_per_session
            ON chat_shell_runs (session_id) WHERE NOT done;
        CREATE INDEX chat_shell_runs_leases ON chat_shell_runs (lease_expires_at) WHERE NOT done;
        CREATE INDEX chat_shell_runs_holders ON chat_shell_runs (holder) WHERE NOT done;
        CREATE INDEX chat_shell_runs_finished ON chat_shell_runs (finished_at) WHERE done;
        CREATE TABLE chat_shell_run_events (
            run_id text NOT NULL REFERENCES chat_shell_runs (run_id) ON DELETE CASCADE,
            seq integer NOT NULL,
            body text NOT NULL,
            PRIMARY KEY (run_id, seq)
        );
        """,
    ),
    (
        "approval answers",
        """
        CREATE TABLE chat_shell_run_approvals (
            run_id text NOT NULL REFERENCES chat_shell_runs (run_id) ON DELETE CASCADE,
            call_id text NOT NULL,
            approved boolean NOT NULL,
            answered_at double precision NOT NULL,
            PRIMARY KEY (run_id, call_id)
        );
        """,
    ),
)
LATEST_VERSION = len(STEPS)


async def migrate(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
    """Bring the database to ``LATEST_VERSION``; returns how many steps this call applied.

    A database a newer chat-shell-postgres migrated further is refused, untouched.
    """
    applied = 0
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS chat_shell_schema ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM chat_shell_schema")
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0  # type: ignore[call-overload]
        if current > LATEST_VERSION:
            raise StorageError(
                f"the database's chat-shell schema is version {current}, newer than this"
                f" chat-shell-postgres knows ({LATEST_VERSION}); upgrade chat-shell-postgres"
            )
        for version in range(current + 1, LATEST_VERSION + 1):
            name, sql = STEPS[version - 1]
            async with conn.transaction():
                await conn.execute(sql.encode())
                await conn.execute(
                    "INSERT INTO chat_shell_schema (version, name) VALUES (%s, %s)",
                    (version, name),
                )
            applied += 1
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied
