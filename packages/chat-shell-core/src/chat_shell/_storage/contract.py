"""The storage contracts every history backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .._errors import UserError
from .._messages import Message, SessionInfo

if TYPE_CHECKING:
    from .._usage import SessionUsage
    from .transfer import ImportReport

__all__ = ["HistoryStorage", "SearchHit", "StorageProvider", "check_keep"]


def check_keep(keep: object, count: int | None = None) -> int:
    """``keep`` of ``truncate_history``: an ``int`` from 0 to ``count`` (when known), else
    ``UserError``."""
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise UserError(f"keep must be a whole number of messages (got {keep!r})")
    if keep < 0:
        raise UserError(f"keep must be 0 or more (got {keep})")
    if count is not None and keep > count:
        raise UserError(f"cannot keep {keep} messages: the session has {count}")
    return keep


class SearchHit(BaseModel):
    """One message matching a ``search``: its session, the message, and a snippet of the match
    with the matched words between ``**``."""

    session_id: str
    message: Message
    snippet: str


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
    async def truncate_history(self, session_id: str, keep: int) -> None:
        """Keep the session's first ``keep`` messages and remove the rest, in one atomic step.

        - ``keep`` is an ``int`` from 0 to the session's message count; anything else (a
          negative number, more than the session holds, a ``bool`` or a non-integer) raises
          ``UserError`` and changes nothing. ``NotFoundError`` if the session does not exist.
        - Atomic: a reader sees the whole history before or the kept messages after, never a
          part of the removal; if it fails, nothing is removed. Messages appended afterwards
          follow the kept ones.
        - The session stays with everything else it has (title, owner, metadata, created_at);
          ``message_count`` becomes ``keep``. If anything was removed, ``updated_at`` is now;
          with ``keep`` equal to the message count, nothing changes at all (so calling it twice
          is the same as once).
        - Removed messages are gone from every index of the backend: ``search`` no longer
          finds them.

        ``truncate_history(id, 0)`` is ``clear_history`` for a session that exists.
        """

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

    # -- built on the methods above; a backend may answer them faster ------------------------

    async def find_session(self, id_or_prefix: str) -> SessionInfo:
        """The session with this id, else the one session whose id starts with it.

        ``UserError`` for text that is not a valid session id, ``NotFoundError`` when no session
        matches, ``AmbiguousSessionError`` (a ``UserError``, with ``matches``) when several do.
        An exact id always wins over longer ids that start with it.
        """
        from .lookup import find_by_prefix

        return await find_by_prefix(self, id_or_prefix)

    async def search(
        self,
        text: str,
        *,
        limit: int = 20,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> list[SearchHit]:
        """Messages whose content holds every word of ``text``, at most ``limit`` of them;
        optionally only ``owner``'s sessions, or one session.

        Words are runs of letters and digits; case and accents are ignored and a word matches
        whole words only (``bake`` does not find ``baker``). Operators of any query language in
        ``text`` are plain text. ``UserError`` if ``text`` has no word, or for a negative
        ``limit``. The order is the backend's best first; this default, which reads every
        session, gives the most recently updated sessions first, each session's messages in
        order. Backends with an index (sqlite) answer from it.
        """
        from .lookup import scan_for_words

        return await scan_for_words(self, text, limit=limit, owner=owner, session_id=session_id)

    def export_sessions(self, session_ids: Iterable[str] | None = None) -> AsyncIterator[str]:
        """The sessions (all, or ``session_ids``) as JSON Lines (``chat_shell.export_sessions``)."""
        from .transfer import export_sessions

        return export_sessions(self, session_ids)

    async def import_sessions(
        self, lines: str | Iterable[str] | AsyncIterable[str]
    ) -> ImportReport:
        """Import JSON Lines from any backend's export; existing sessions are skipped
        (``chat_shell.import_sessions``)."""
        from .transfer import import_sessions

        return await import_sessions(self, lines)

    async def get_usage(self, session_id: str) -> SessionUsage:
        """Token totals of the session's model answers, by model (``metadata["model"]`` and
        ``metadata["usage"]`` of its messages), without prices; an unknown session has none.

        The default reads the whole history; a backend that can add up in place (SQL)
        overrides it.
        """
        from .._usage import SessionUsage

        return SessionUsage.from_messages(await self.get_history(session_id))


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

    async def search(
        self,
        text: str,
        *,
        limit: int = 20,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> list[SearchHit]:
        """``history.search``: see ``HistoryStorage.search``."""
        return await self.history.search(text, limit=limit, owner=owner, session_id=session_id)

    def export_sessions(self, session_ids: Iterable[str] | None = None) -> AsyncIterator[str]:
        """``history.export_sessions``: see ``HistoryStorage.export_sessions``."""
        return self.history.export_sessions(session_ids)

    async def import_sessions(
        self, lines: str | Iterable[str] | AsyncIterable[str]
    ) -> ImportReport:
        """``history.import_sessions``: see ``HistoryStorage.import_sessions``."""
        return await self.history.import_sessions(lines)

    async def __aenter__(self) -> StorageProvider:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
