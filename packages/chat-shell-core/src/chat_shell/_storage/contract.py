"""The storage contracts every history backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from .._messages import Message, SessionInfo

__all__ = ["HistoryStorage", "StorageProvider"]


class HistoryStorage(ABC):
    """Conversation history, per session.

    Every method validates session ids (``validate_session_id``) and raises ``UserError`` for a
    bad one before touching anything. A session exists from its first appended message until
    ``delete_session``.
    """

    @abstractmethod
    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        """Messages of the session, oldest first; with ``limit``, the last ``limit`` of them.

        An unknown session has an empty history.
        """

    @abstractmethod
    async def append_messages(
        self, session_id: str, messages: Sequence[Message], *, owner: str | None = None
    ) -> None:
        """Append messages atomically (all or none), creating the session if needed.

        ``owner`` is recorded when the session is created and ignored afterwards.
        """

    @abstractmethod
    async def clear_history(self, session_id: str) -> None:
        """Remove every message of the session; the session itself stays (with no messages)."""

    @abstractmethod
    async def get_session(self, session_id: str) -> SessionInfo:
        """The session's info; ``NotFoundError`` if it does not exist."""

    @abstractmethod
    async def list_sessions(
        self, *, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> list[SessionInfo]:
        """Sessions, most recently updated first; with ``owner``, only that owner's."""

    @abstractmethod
    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        """Set a session's title and/or merge into its metadata; ``NotFoundError`` if missing."""

    @abstractmethod
    async def delete_session(self, session_id: str) -> None:
        """Delete the session and all its messages; ``NotFoundError`` if it does not exist."""


class StorageProvider(ABC):
    """A storage backend: opened with ``initialize()``, closed with ``close()``.

    Backends register a factory (usually the class itself) under the ``chat_shell.storage``
    entry-point group; the factory takes keyword options such as ``path`` or ``url``.
    """

    name: str = ""
    #: Whether several processes may use the backend at once, each seeing the others' writes
    #: (a database file or server, not one process's memory): what ``chat-shell serve
    #: --workers N`` needs.
    shared_between_processes: bool = False

    @property
    @abstractmethod
    def history(self) -> HistoryStorage:
        """The history store (valid between ``initialize()`` and ``close()``)."""

    @abstractmethod
    async def initialize(self) -> None:
        """Open files, connections, run migrations. Safe to call twice."""

    @abstractmethod
    async def close(self) -> None:
        """Release everything. Safe to call twice."""

    async def health(self) -> bool:
        """Whether the backend can be reached right now."""
        try:
            await self.history.list_sessions(limit=1)
        except Exception:
            return False
        return True

    async def __aenter__(self) -> StorageProvider:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
