"""Moving sessions between backends: export and import as JSON Lines.

The format, one JSON object per line::

    {"type": "session", "id": "s1", "title": ..., "owner": ..., "created_at": ...,
     "updated_at": ..., "message_count": 2, "metadata": {...}}
    {"type": "message", "session_id": "s1", "role": "user", "content": "hi", ...Message fields}
    {"type": "message", "session_id": "s1", "role": "assistant", ...}
    {"type": "session", "id": "s2", ...}

Each session line is followed by that session's messages, oldest first. It works on any
``HistoryStorage``, so memory, json, sqlite (and any plugin) read and write the same files.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field, ValidationError

from .._errors import NotFoundError, UserError
from .._messages import Message, SessionInfo, validate_session_id
from .contract import HistoryStorage
from .document import DocumentHistory, SessionDocument

__all__ = ["ImportReport", "SessionImporter", "export_sessions", "import_sessions"]

_PAGE = 200


class ImportReport(BaseModel):
    """What ``import_sessions`` did: sessions written, sessions left alone (id -> reason)."""

    imported: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    messages: int = 0


@runtime_checkable
class SessionImporter(Protocol):
    """Optional hook a ``HistoryStorage`` may implement for a faithful, atomic import.

    ``import_session`` stores the session exactly as given (timestamps, title, owner, metadata,
    messages, even with no messages) unless a session with that id exists; it returns whether it
    stored it. The existence check and the write are one atomic step.
    """

    async def import_session(self, info: SessionInfo, messages: Sequence[Message]) -> bool: ...


async def export_sessions(
    history: HistoryStorage, session_ids: Iterable[str] | None = None
) -> AsyncIterator[str]:
    """Yield the sessions (all of them, or ``session_ids``) as JSON Lines, each ending in ``\\n``.

    An explicitly named session that does not exist raises ``NotFoundError``; a session deleted
    while an export of everything runs is left out.
    """
    explicit = session_ids is not None
    if session_ids is None:
        ids: list[str] = []
        offset = 0
        while True:
            page = await history.list_sessions(limit=_PAGE, offset=offset)
            ids.extend(info.id for info in page)
            if len(page) < _PAGE:
                break
            offset += _PAGE
        ids = list(dict.fromkeys(ids))  # paging under concurrent updates can repeat an id
    else:
        ids = [validate_session_id(session_id) for session_id in session_ids]
    for session_id in ids:
        try:
            info = await history.get_session(session_id)
        except NotFoundError:
            if explicit:
                raise
            continue
        messages = await history.get_history(session_id)
        head = {"type": "session", **info.model_dump(mode="json")}
        head["message_count"] = len(messages)
        yield json.dumps(head, ensure_ascii=False) + "\n"
        for message in messages:
            line = {"type": "message", "session_id": session_id, **message.model_dump(mode="json")}
            yield json.dumps(line, ensure_ascii=False) + "\n"


async def _collect(lines: str | Iterable[str] | AsyncIterable[str]) -> list[str]:
    if isinstance(lines, str):
        return lines.splitlines()
    if isinstance(lines, AsyncIterable):
        return [line async for line in lines]
    return list(lines)


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    return f"{where}: {first['msg']}"


def _parse(lines: list[str]) -> list[tuple[SessionInfo, list[Message]]]:
    sessions: list[tuple[SessionInfo, list[Message]]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            item: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"line {number}: not valid JSON ({exc.msg}); nothing was imported"
            ) from exc
        if not isinstance(item, dict) or item.get("type") not in ("session", "message"):
            raise UserError(
                f'line {number}: expected an object with "type": "session" or "message";'
                " nothing was imported"
            )
        kind = item.pop("type")
        if kind == "session":
            try:
                info = SessionInfo.model_validate(item)
                validate_session_id(info.id)
            except ValidationError as exc:
                raise UserError(
                    f"line {number}: bad session ({_problem(exc)}); nothing was imported"
                ) from exc
            except UserError as exc:
                raise UserError(f"line {number}: {exc.message}; nothing was imported") from exc
            if info.id in seen:
                raise UserError(
                    f"line {number}: session {info.id!r} already appeared on line {seen[info.id]};"
                    " nothing was imported"
                )
            seen[info.id] = number
            sessions.append((info, []))
            continue
        session_id = item.pop("session_id", None)
        if not sessions or session_id != sessions[-1][0].id:
            raise UserError(
                f"line {number}: message for session {session_id!r} does not follow that"
                ' session\'s "type": "session" line; nothing was imported'
            )
        try:
            sessions[-1][1].append(Message.model_validate(item))
        except ValidationError as exc:
            raise UserError(
                f"line {number}: bad message ({_problem(exc)}); nothing was imported"
            ) from exc
    return sessions


async def _import_documents(
    history: DocumentHistory, info: SessionInfo, messages: list[Message]
) -> bool:
    async with history._write_lock():
        if await history._load(info.id) is not None:
            return False
        await history._save(SessionDocument(session=info, messages=messages))
        return True


async def import_sessions(
    history: HistoryStorage, lines: str | Iterable[str] | AsyncIterable[str]
) -> ImportReport:
    """Import JSON Lines written by ``export_sessions`` (from any backend) into ``history``.

    ``lines`` is the whole text, or an iterable of lines (an open file), sync or async.

    Every line is validated before anything is written: a bad line raises ``UserError`` naming
    its number, and nothing is imported. Existing data is never overwritten: a session whose id
    already exists is skipped and listed in ``ImportReport.skipped``. Each session is written
    atomically; sessions are written one by one, so an import cut short can simply be run again
    (what was already imported is then skipped).

    Backends implementing ``SessionImporter`` (sqlite) and the memory and json backends keep
    sessions exactly (timestamps included). Other backends get the messages appended and title
    and metadata set, with the import time as timestamps; a session without messages cannot be
    created there and is skipped.
    """
    parsed = _parse(await _collect(lines))
    report = ImportReport()
    for info, messages in parsed:
        info = info.model_copy(update={"message_count": len(messages)})
        stored: bool | None
        if isinstance(history, SessionImporter):
            stored = await history.import_session(info, messages)
        elif isinstance(history, DocumentHistory):
            stored = await _import_documents(history, info, messages)
        else:
            stored = await _import_generic(history, info, messages, report)
        if stored is None:
            continue
        if stored:
            report.imported.append(info.id)
            report.messages += len(messages)
        else:
            report.skipped[info.id] = "a session with this id already exists"
    return report


async def _import_generic(
    history: HistoryStorage, info: SessionInfo, messages: list[Message], report: ImportReport
) -> bool | None:
    try:
        await history.get_session(info.id)
    except NotFoundError:
        pass
    else:
        return False
    if not messages:
        report.skipped[info.id] = "this backend cannot create a session without messages"
        return None
    await history.append_messages(info.id, messages, owner=info.owner)
    if info.title is not None or info.metadata:
        await history.update_session(info.id, title=info.title, metadata=info.metadata or None)
    return True
