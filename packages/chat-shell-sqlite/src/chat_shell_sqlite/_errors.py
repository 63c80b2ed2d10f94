"""SQLite failures as ``StorageError``s that name the file and say what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chat_shell import StorageError

__all__ = ["corrupt_error", "storage_error"]


def corrupt_error(path: Path, detail: str) -> StorageError:
    return StorageError(
        f"{path} is corrupt ({detail}); chat-shell left it untouched: restore it from a backup,"
        f" salvage it with `sqlite3 {path} .recover | sqlite3 recovered.db`, or choose another"
        " storage path"
    )


def storage_error(
    path: Path, exc: sqlite3.Error | UnicodeDecodeError, busy_timeout: float
) -> StorageError:
    # UnicodeDecodeError: SQLite's own error message quoted damaged bytes (of the schema, say)
    # that are not UTF-8; ``sqlite3`` fails to decode the message itself.
    if isinstance(exc, UnicodeDecodeError):
        return corrupt_error(path, "it holds bytes that are not UTF-8 where text should be")
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith("SQLITE_NOTADB") or "not a database" in text:
        return StorageError(
            f"{path} is not a SQLite database (or is encrypted); chat-shell left it untouched:"
            " move it away or choose another storage path"
        )
    # Text that is not UTF-8 where chat-shell only ever writes UTF-8: damaged bytes.
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text or "decode to UTF-8" in text:
        return corrupt_error(path, text)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageError(
            f"{path} stayed locked by another process for more than {busy_timeout:g} s; try"
            " again, and look for a process stuck in a long write"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return StorageError(
            f"{path} is read-only ({text}); make the file and its folder writable or choose"
            " another storage path"
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return StorageError(
            f"cannot open {path} ({text}); check that the file and its folder exist and are"
            " writable, or choose another storage path"
        )
    if name.startswith("SQLITE_FULL"):
        return StorageError(f"cannot write {path}: the disk is full")
    return StorageError(f"SQLite error on {path}: {text}")
