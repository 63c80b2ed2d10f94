"""PostgreSQL failures as ``StorageError``s that name the database (never its password)."""

from __future__ import annotations

import psycopg
from chat_shell import StorageError
from psycopg.conninfo import conninfo_to_dict

__all__ = ["describe", "storage_error", "unreachable_error"]


def describe(conninfo: str) -> str:
    """``host:port/dbname`` of a URL or conninfo string, for messages (no user, no password)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the configured database"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or params.get("user") or "")
    return f"{host}:{port}/{dbname}"


def _reason(exc: BaseException) -> str:
    """The driver's first line (libpq adds hints on the next lines; ours follow instead)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def unreachable_error(conninfo: str, exc: BaseException) -> StorageError:
    return StorageError(
        f"cannot connect to PostgreSQL at {describe(conninfo)}: {_reason(exc)}; is the server"
        " running there, and are storage_url's host, port, user and password right?"
    )


def storage_error(conninfo: str, exc: BaseException) -> StorageError:
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(
            f"lost PostgreSQL at {describe(conninfo)}: {_reason(exc)}; nothing of this request"
            " was written, try again"
        )
    return StorageError(f"PostgreSQL error at {describe(conninfo)}: {_reason(exc)}")
