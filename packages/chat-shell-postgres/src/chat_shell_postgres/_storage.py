"""History in PostgreSQL: shared by every process and machine that opens the database."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from chat_shell import (
    HistoryStorage,
    Message,
    NotFoundError,
    SearchHit,
    SessionInfo,
    StorageError,
    StorageProvider,
    UserError,
    validate_session_id,
)
from chat_shell._storage.contract import check_keep
from chat_shell._storage.lookup import fold
from chat_shell._storage.rows import (
    check_paging,
    encode_json,
    message_json,
    messages_from_rows,
    query_words,
    search_hits,
    session_from_row,
)
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ._connect import Connection, check_url, open_pool
from ._errors import describe, storage_error

__all__ = ["PostgresHistoryStorage", "PostgresStorage", "SearchHit"]

DEFAULT_POOL_SIZE = 10
DEFAULT_CONNECT_TIMEOUT = 10.0

_MESSAGE_COLUMNS = (
    "role, content, content_encoded, tool_calls, tool_call_id, name, timestamp, metadata"
)
_SESSION_COLUMNS = "id, title, owner, created_at, updated_at, message_count, metadata"
_INSERT_MESSAGE = (
    "INSERT INTO chat_shell_messages (session_id, role, content, content_encoded, tool_calls,"
    " tool_call_id, name, timestamp, metadata, words)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, to_tsvector('simple', %s))"
)
_TOUCH_SESSION = (
    "INSERT INTO chat_shell_sessions AS s (id, owner, created_at, updated_at, message_count)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
    " updated_at = greatest(s.updated_at, excluded.updated_at),"
    " message_count = s.message_count + excluded.message_count"
)
_HISTORY = f"SELECT {_MESSAGE_COLUMNS} FROM chat_shell_messages WHERE session_id = %s ORDER BY id"  # noqa: S608
_HISTORY_LAST = (
    f"SELECT {_MESSAGE_COLUMNS} FROM (SELECT id, {_MESSAGE_COLUMNS} FROM chat_shell_messages"  # noqa: S608
    " WHERE session_id = %s ORDER BY id DESC LIMIT %s) AS last ORDER BY id"
)
_HEADLINE = (
    "StartSel=**, StopSel=**, MaxWords=20, MinWords=6, ShortWord=0, MaxFragments=1,"
    " FragmentDelimiter=…"
)
_SEARCH = (
    "SELECT hit.session_id,"  # noqa: S608
    " ts_headline('simple', coalesce(hit.content, ''), query, %(headline)s),"
    f" {', '.join('hit.' + c for c in _MESSAGE_COLUMNS.split(', '))}"
    " FROM (SELECT m.*, ts_rank_cd(m.words, query) AS rank, query"
    "  FROM chat_shell_messages AS m JOIN chat_shell_sessions AS s ON s.id = m.session_id,"
    "  plainto_tsquery('simple', %(query)s) AS query"
    "  WHERE m.words @@ query"
    "  AND (%(owner)s::text IS NULL OR s.owner = %(owner)s)"
    "  AND (%(session)s::text IS NULL OR m.session_id = %(session)s)"
    "  ORDER BY rank DESC, m.id DESC LIMIT %(limit)s) AS hit"
    " ORDER BY hit.rank DESC, hit.id DESC"
)


def _message_row(session_id: str, message: Message) -> tuple[Any, ...]:
    tool_calls, metadata = message_json(message)
    content = message.content
    # PostgreSQL text cannot hold NUL: such content is stored as JSON text
    encoded = content is not None and "\x00" in content
    stored = encode_json(content) if encoded else content
    words = fold(content.replace("\x00", " ")) if content else ""
    return (
        session_id,
        message.role,
        stored,
        encoded,
        tool_calls,
        message.tool_call_id,
        message.name,
        message.timestamp,
        metadata,
        words,
    )


class PostgresHistoryStorage(HistoryStorage):
    """``HistoryStorage`` over a pool of connections to one database, plus search, export and
    import. Every call takes a connection from the pool for one transaction and gives it back."""

    def __init__(self, pool: AsyncConnectionPool[Connection], conninfo: str) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self.where = describe(conninfo)

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool = False) -> AsyncIterator[Connection]:
        """A pooled connection (in a transaction to ``write``: a read is one statement);
        driver failures become ``StorageError``."""
        try:
            async with self._pool.connection() as conn:
                if write:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        except PoolTimeout as exc:
            raise StorageError(
                f"no connection to PostgreSQL at {self.where} within"
                f" {self._pool.timeout:g} s ({exc}); is the server up, or are all"
                " connections busy?"
            ) from exc
        except psycopg.Error as exc:
            raise storage_error(self._conninfo, exc) from exc

    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        validate_session_id(session_id)
        if limit is not None and limit <= 0:
            return []
        async with self._connection() as conn:
            if limit is None:
                cursor = await conn.execute(_HISTORY, (session_id,))
            else:
                cursor = await conn.execute(_HISTORY_LAST, (session_id, limit))
            rows = await cursor.fetchall()
        return messages_from_rows(self.where, rows, content_encoded=True)

    async def append_messages(
        self, session_id: str, messages: Sequence[Message], *, owner: str | None = None
    ) -> None:
        validate_session_id(session_id)
        if not messages:
            return
        rows = [_message_row(session_id, message) for message in messages]
        now = time.time()
        async with self._connection(write=True) as conn:
            await conn.execute(_TOUCH_SESSION, (session_id, owner, now, now, len(rows)))
            async with conn.cursor() as cursor:
                await cursor.executemany(_INSERT_MESSAGE, rows)

    async def clear_history(self, session_id: str) -> None:
        validate_session_id(session_id)
        async with self._connection(write=True) as conn:
            cursor = await conn.execute(
                "UPDATE chat_shell_sessions SET message_count = 0, updated_at = %s WHERE id = %s",
                (time.time(), session_id),
            )
            if cursor.rowcount:
                await conn.execute(
                    "DELETE FROM chat_shell_messages WHERE session_id = %s", (session_id,)
                )

    async def truncate_history(self, session_id: str, keep: int) -> None:
        validate_session_id(session_id)
        check_keep(keep)
        async with self._connection(write=True) as conn:  # one transaction, the session locked
            info = await self._get(conn, session_id, lock=True)
            check_keep(keep, info.message_count)
            if keep == info.message_count:
                return  # nothing to remove: nothing changes
            await conn.execute(
                "DELETE FROM chat_shell_messages WHERE id IN (SELECT id FROM chat_shell_messages"
                " WHERE session_id = %s ORDER BY id OFFSET %s)",
                (session_id, keep),
            )
            await conn.execute(
                "UPDATE chat_shell_sessions SET message_count = %s, updated_at = %s WHERE id = %s",
                (keep, time.time(), session_id),
            )

    async def _get(self, conn: Connection, session_id: str, *, lock: bool = False) -> SessionInfo:
        sql = f"SELECT {_SESSION_COLUMNS} FROM chat_shell_sessions WHERE id = %s"  # noqa: S608
        cursor = await conn.execute((sql + (" FOR UPDATE" if lock else "")).encode(), (session_id,))
        row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        return session_from_row(self.where, row)

    async def get_session(self, session_id: str) -> SessionInfo:
        validate_session_id(session_id)
        async with self._connection() as conn:
            return await self._get(conn, session_id)

    async def list_sessions(
        self, *, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> list[SessionInfo]:
        check_paging(limit, offset)
        async with self._connection() as conn:
            if owner is None:
                cursor = await conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM chat_shell_sessions"  # noqa: S608
                    " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s",
                    (limit, offset),
                )
            else:
                cursor = await conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM chat_shell_sessions WHERE owner = %s"  # noqa: S608
                    " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s",
                    (owner, limit, offset),
                )
            rows = await cursor.fetchall()
        return [session_from_row(self.where, row) for row in rows]

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        validate_session_id(session_id)
        try:
            extra = json.loads(encode_json(metadata or {}))
        except Exception as exc:
            raise UserError(f"session metadata cannot be stored as JSON: {exc}") from exc
        async with self._connection(write=True) as conn:
            info = await self._get(conn, session_id, lock=True)
            merged = {**info.metadata, **extra}
            now = time.time()
            await conn.execute(
                "UPDATE chat_shell_sessions SET title = coalesce(%s, title), metadata = %s,"
                " updated_at = %s WHERE id = %s",
                (title, encode_json(merged), now, session_id),
            )
        return info.model_copy(
            update={
                "title": info.title if title is None else title,
                "metadata": merged,
                "updated_at": now,
            }
        )

    async def delete_session(self, session_id: str) -> None:
        validate_session_id(session_id)
        async with self._connection(write=True) as conn:
            # ON DELETE CASCADE removes the messages
            cursor = await conn.execute(
                "DELETE FROM chat_shell_sessions WHERE id = %s", (session_id,)
            )
            if not cursor.rowcount:
                raise NotFoundError(f"no session {session_id!r}")

    # -- beyond the base interface ---------------------------------------------------------------

    async def search(
        self,
        text: str,
        *,
        limit: int = 20,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> list[SearchHit]:
        """Messages whose content holds every word of ``text`` (case and accents ignored), best
        matches first (PostgreSQL's full-text ranking); optionally only ``owner``'s sessions or
        one session."""
        words = " ".join(query_words(fold(text)))
        check_paging(limit, 0)
        if session_id is not None:
            validate_session_id(session_id)
        arguments = {
            "query": words,
            "owner": owner,
            "session": session_id,
            "limit": limit,
            "headline": _HEADLINE,
        }
        async with self._connection() as conn:
            cursor = await conn.execute(_SEARCH, arguments)
            rows = await cursor.fetchall()
        return search_hits(self.where, rows, content_encoded=True)

    async def import_session(self, info: SessionInfo, messages: Sequence[Message]) -> bool:
        """Store a session exactly as given unless its id exists (one atomic step)."""
        session_id = validate_session_id(info.id)
        rows = [_message_row(session_id, message) for message in messages]
        metadata = encode_json(info.model_dump(mode="json")["metadata"])
        async with self._connection(write=True) as conn:
            cursor = await conn.execute(
                f"INSERT INTO chat_shell_sessions ({_SESSION_COLUMNS})"  # noqa: S608
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (
                    session_id,
                    info.title,
                    info.owner,
                    info.created_at,
                    info.updated_at,
                    len(rows),
                    metadata,
                ),
            )
            created = bool(cursor.rowcount)
            if created and rows:
                async with conn.cursor() as insert:
                    await insert.executemany(_INSERT_MESSAGE, rows)
        return created


class PostgresStorage(StorageProvider):
    """History in a PostgreSQL database, named by ``url`` (``postgresql://user:password@host:port/db``
    or any libpq connection string; libpq's ``PG*`` variables fill what it leaves out).

    ``initialize()`` connects (within ``connect_timeout`` seconds), migrates the schema under an
    advisory lock and opens a pool of up to ``pool_size`` connections; an unreachable server is a
    ``StorageError`` naming host, port and database (never the password).
    """

    name = "postgres"
    shared_between_processes = True

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.url = check_url(url)
        if pool_size < 1:
            raise UserError(f"pool_size must be 1 or more (got {pool_size})")
        if connect_timeout <= 0:
            raise UserError(f"connect_timeout must be more than 0 seconds (got {connect_timeout})")
        self.pool_size = pool_size
        self.connect_timeout = float(connect_timeout)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._history: PostgresHistoryStorage | None = None

    @property
    def where(self) -> str:
        """``host:port/dbname`` of the database (what messages name)."""
        return describe(self.url)

    @property
    def history(self) -> PostgresHistoryStorage:
        if self._history is None:
            raise StorageError(
                "PostgresStorage is not initialized: call `await storage.initialize()`"
            )
        return self._history

    async def initialize(self) -> None:
        if self._history is not None:
            return
        pool = await open_pool(self.url, self.pool_size, self.connect_timeout, "chat-shell history")
        self._pool = pool
        self._history = PostgresHistoryStorage(pool, self.url)

    async def close(self) -> None:
        pool, self._pool, self._history = self._pool, None, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresStorage:
        await self.initialize()
        return self
