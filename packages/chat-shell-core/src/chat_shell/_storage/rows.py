"""What the SQL history backends (chat-shell-sqlite, chat-shell-postgres) share: a message to
the JSON of its columns and rows back to messages, sessions and search hits, and the argument
checks they answer with the same words. Their SQL, which differs, stays with each backend."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .._errors import StorageError, UserError
from .._messages import Message, SessionInfo
from .contract import SearchHit

__all__ = [
    "check_paging",
    "encode_json",
    "message_json",
    "messages_from_rows",
    "query_words",
    "search_hits",
    "session_from_row",
]

#: Compact JSON text, non-ASCII characters kept as they are.
encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_MESSAGE_LIST = TypeAdapter(list[Message])
_NOT_VALID = (ValueError, TypeError, ValidationError)


def message_json(message: Message) -> tuple[str | None, str]:
    """The ``tool_calls`` (``None`` when it has none) and ``metadata`` columns of a message, as
    JSON text; ``UserError`` when they cannot be stored as JSON."""
    try:
        data = message.model_dump(mode="json", include={"tool_calls", "metadata"})
        tool_calls = data["tool_calls"]
        return (
            None if tool_calls is None else encode_json(tool_calls),
            encode_json(data["metadata"]),
        )
    except Exception as exc:
        raise UserError(f"message metadata cannot be stored as JSON: {exc}") from exc


def messages_from_rows(
    where: object, rows: Iterable[Sequence[Any]], *, content_encoded: bool = False
) -> list[Message]:
    """Rows ``(role, content, tool_calls, tool_call_id, name, timestamp, metadata)`` as
    messages, validated in one call (a quarter cheaper than one call per row); a row that is
    not a valid message is a ``StorageError`` naming ``where`` (the file, the database).

    ``content_encoded``: each row has, after ``content``, whether that content is stored as
    JSON text (a database whose text cannot hold every character).
    """
    loads = json.loads
    try:
        if content_encoded:
            data = [
                {
                    "role": role,
                    "content": loads(content) if encoded else content,
                    "tool_calls": None if tool_calls is None else loads(tool_calls),
                    "tool_call_id": tool_call_id,
                    "name": name,
                    "timestamp": timestamp,
                    "metadata": loads(metadata),
                }
                for role, content, encoded, tool_calls, tool_call_id, name, timestamp, metadata in (
                    rows
                )
            ]
        else:
            data = [
                {
                    "role": role,
                    "content": content,
                    "tool_calls": None if tool_calls is None else loads(tool_calls),
                    "tool_call_id": tool_call_id,
                    "name": name,
                    "timestamp": timestamp,
                    "metadata": loads(metadata),
                }
                for role, content, tool_calls, tool_call_id, name, timestamp, metadata in rows
            ]
        return _MESSAGE_LIST.validate_python(data)
    except _NOT_VALID as exc:
        raise StorageError(f"{where} holds a message that is not valid ({exc})") from exc


def session_from_row(where: object, row: Sequence[Any]) -> SessionInfo:
    """A row ``(id, title, owner, created_at, updated_at, message_count, metadata)`` as a
    session; one that is not valid is a ``StorageError`` naming ``where``."""
    session_id, title, owner, created_at, updated_at, message_count, metadata = row
    try:
        return SessionInfo(
            id=session_id,
            title=title,
            owner=owner,
            created_at=created_at,
            updated_at=updated_at,
            message_count=message_count,
            metadata=json.loads(metadata),
        )
    except _NOT_VALID as exc:
        raise StorageError(f"{where} holds a session that is not valid ({exc})") from exc


def search_hits(
    where: object, rows: Iterable[Sequence[Any]], *, content_encoded: bool = False
) -> list[SearchHit]:
    """Rows ``(session_id, snippet, *message columns)`` (as ``messages_from_rows`` reads
    them) as search hits, in their order."""
    return [
        SearchHit(
            session_id=row[0],
            snippet=row[1],
            message=messages_from_rows(where, [row[2:]], content_encoded=content_encoded)[0],
        )
        for row in rows
    ]


def check_paging(limit: int, offset: int) -> None:
    """``UserError`` for a negative ``limit`` or ``offset``."""
    if limit < 0 or offset < 0:
        raise UserError(f"limit and offset must be 0 or more (got limit={limit}, offset={offset})")


def query_words(text: str) -> list[str]:
    """The words of a search text, split at white space, that hold a letter, digit or ``_``
    (what a backend turns into its own query); ``UserError`` if there are none."""
    words = [word for word in text.split() if re.search(r"\w", word)]
    if not words:
        raise UserError("search text has no words to look for")
    return words
