"""In-memory history: the library default; gone when the process ends."""

from __future__ import annotations

from .._messages import SessionInfo
from .contract import HistoryStorage, StorageProvider
from .document import DocumentHistory, SessionDocument

__all__ = ["MemoryHistoryStorage", "MemoryStorage"]


class MemoryHistoryStorage(DocumentHistory):
    def __init__(self) -> None:
        super().__init__()
        self._documents: dict[str, SessionDocument] = {}

    async def _load(self, session_id: str) -> SessionDocument | None:
        document = self._documents.get(session_id)
        return None if document is None else document.model_copy(deep=True)

    async def _save(self, document: SessionDocument) -> None:
        self._documents[document.session.id] = document.model_copy(deep=True)

    async def _remove(self, session_id: str) -> bool:
        return self._documents.pop(session_id, None) is not None

    async def _all(self) -> list[SessionInfo]:
        return [d.session.model_copy() for d in self._documents.values()]


class MemoryStorage(StorageProvider):
    """History in this process's memory."""

    name = "memory"

    def __init__(self) -> None:
        self._history = MemoryHistoryStorage()

    @property
    def history(self) -> HistoryStorage:
        return self._history

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None
