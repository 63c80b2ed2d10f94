"""History kept as one document per session (a session's info plus its messages).

The memory and JSON backends differ only in where a document lives; everything else is here.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel

from .._errors import NotFoundError
from .._messages import Message, SessionInfo, validate_session_id
from .contract import HistoryStorage, check_keep

__all__ = ["DocumentHistory", "SessionDocument"]


class SessionDocument(BaseModel):
    session: SessionInfo
    messages: list[Message]


class DocumentHistory(HistoryStorage):
    """``HistoryStorage`` over whole-session documents; subclasses load, save and list them."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _write_lock(self) -> AsyncIterator[None]:
        """Held around every read-modify-write; backends shared between processes extend it."""
        async with self._lock:
            yield

    @abstractmethod
    async def _load(self, session_id: str) -> SessionDocument | None: ...

    @abstractmethod
    async def _save(self, document: SessionDocument) -> None: ...

    @abstractmethod
    async def _remove(self, session_id: str) -> bool: ...

    @abstractmethod
    async def _all(self) -> list[SessionInfo]: ...

    async def _require(self, session_id: str) -> SessionDocument:
        document = await self._load(validate_session_id(session_id))
        if document is None:
            raise NotFoundError(f"no session {session_id!r}")
        return document

    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        document = await self._load(validate_session_id(session_id))
        if document is None:
            return []
        messages = document.messages
        if limit is not None:
            messages = messages[-limit:] if limit > 0 else []
        return [message.model_copy(deep=True) for message in messages]

    async def append_messages(
        self, session_id: str, messages: Sequence[Message], *, owner: str | None = None
    ) -> None:
        validate_session_id(session_id)
        if not messages:
            return
        async with self._write_lock():
            now = time.time()
            document = await self._load(session_id)
            if document is None:
                info = SessionInfo(id=session_id, owner=owner, created_at=now, updated_at=now)
                document = SessionDocument(session=info, messages=[])
            document.messages.extend(message.model_copy(deep=True) for message in messages)
            document.session.updated_at = now
            document.session.message_count = len(document.messages)
            await self._save(document)

    async def clear_history(self, session_id: str) -> None:
        async with self._write_lock():
            document = await self._load(validate_session_id(session_id))
            if document is None:
                return
            document.messages.clear()
            document.session.message_count = 0
            document.session.updated_at = time.time()
            await self._save(document)

    async def truncate_history(self, session_id: str, keep: int) -> None:
        validate_session_id(session_id)
        check_keep(keep)
        async with self._write_lock():
            document = await self._require(session_id)
            check_keep(keep, len(document.messages))
            if keep == len(document.messages):
                return
            del document.messages[keep:]
            document.session.message_count = keep
            document.session.updated_at = time.time()
            await self._save(document)

    async def get_session(self, session_id: str) -> SessionInfo:
        return (await self._require(session_id)).session

    async def list_sessions(
        self, *, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> list[SessionInfo]:
        sessions = [s for s in await self._all() if owner is None or s.owner == owner]
        sessions.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        return sessions[offset : offset + limit]

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        async with self._write_lock():
            document = await self._require(session_id)
            if title is not None:
                document.session.title = title
            if metadata:
                document.session.metadata.update(metadata)
            document.session.updated_at = time.time()
            await self._save(document)
            return document.session

    async def delete_session(self, session_id: str) -> None:
        async with self._write_lock():
            if not await self._remove(validate_session_id(session_id)):
                raise NotFoundError(f"no session {session_id!r}")
