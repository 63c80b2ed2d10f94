"""Opening a database: check the URL, connect once to migrate, then a pool of connections."""

from __future__ import annotations

import select
from typing import Any

import psycopg
from chat_shell import UserError
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ._errors import storage_error, unreachable_error
from ._migrations import migrate

__all__ = ["Connection", "check_url", "connect", "open_pool"]

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


def check_url(url: str | None, *, what: str = "the postgres storage") -> str:
    """``url`` when it is a PostgreSQL URL or connection string; else a ``UserError``."""
    if not url:
        raise UserError(
            f"{what} needs a database URL: set storage_url (or CHAT_SHELL_STORAGE_URL) to"
            " postgresql://user:password@host:5432/dbname"
        )
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise UserError(
            f"storage_url is not a PostgreSQL URL or connection string: {exc}"
        ) from None
    return url


async def connect(url: str, connect_timeout: float, *, autocommit: bool = False) -> Connection:
    """One connection; an unreachable server is a ``StorageError`` naming it (no password)."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, connect_timeout=max(1, round(connect_timeout)), autocommit=autocommit
        )
    except psycopg.Error as exc:
        raise unreachable_error(url, exc) from None


async def _check_idle(conn: Connection) -> None:
    """The pool's check of a connection before lending it: raises if the connection is gone.

    A connection that sat idle in the pool has nothing to read on its socket unless the server
    sent something meanwhile, which for an idle session means it ended it (a restart, an
    administrator) or reported on it; only then is the server asked (one round trip). A healthy
    connection costs one poll of its socket, not one query per use."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    url: str, size: int, connect_timeout: float, name: str
) -> AsyncConnectionPool[Connection]:
    """Migrate the schema (under its advisory lock), then open a pool of up to ``size``."""
    conn = await connect(url, connect_timeout)
    try:
        await migrate(conn)
    except psycopg.Error as exc:
        raise storage_error(url, exc) from None
    finally:
        await conn.close()
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=size,
        open=False,
        timeout=connect_timeout,
        # a connection the server closed (a restart) is noticed and replaced before use
        check=_check_idle,
        # autocommit: a read is one statement and one round trip; writes open a transaction
        kwargs={"connect_timeout": max(1, round(connect_timeout)), "autocommit": True},
        name=name,
    )
    try:
        await pool.open(wait=True, timeout=connect_timeout)
    except PoolTimeout as exc:
        await pool.close()
        raise unreachable_error(url, exc) from None
    return pool
