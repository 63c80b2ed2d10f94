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
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def unreachable_error(conninfo: str, exc: BaseException) -> StorageError:
    return StorageError(
        f"cannot connect to PostgreSQL at {describe(conninfo)}: {_reason(exc)}; check"
        " storage_url and that the server is running"
    )


def storage_error(conninfo: str, exc: BaseException) -> StorageError:
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(
            f"lost PostgreSQL at {describe(conninfo)}: {_reason(exc)}; nothing of this request"
            " was written, try again"
        )
    return StorageError(f"PostgreSQL error at {describe(conninfo)}: {_reason(exc)}")
