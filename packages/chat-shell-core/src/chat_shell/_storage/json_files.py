"""History as JSON files: one file per session in a folder, written atomically."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import ValidationError

from .._config import default_home, make_private_folder
from .._errors import StorageError
from .._messages import SessionInfo, validate_session_id
from .contract import HistoryStorage, StorageProvider
from .document import DocumentHistory, SessionDocument

try:  # POSIX: serialise writers across processes too
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["JSONHistoryStorage", "JSONStorage"]


class JSONHistoryStorage(DocumentHistory):
    """Each session is ``<folder>/<session id>.json``; writes go to a temporary file (0600) that
    is fsynced and renamed over the old one, so a reader never sees half a file and a crash
    never loses what was stored before."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def _path(self, session_id: str) -> Path:
        path = self.folder / f"{validate_session_id(session_id)}.json"
        if path.parent != self.folder:  # defence in depth: ids are already validated
            raise StorageError(f"session id {session_id!r} does not map into {self.folder}")
        return path

    @asynccontextmanager
    async def _write_lock(self) -> AsyncIterator[None]:
        async with super()._write_lock():
            if fcntl is None:
                yield
                return
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def _read(self, path: Path) -> SessionDocument | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            return SessionDocument.model_validate_json(raw)
        except ValidationError as exc:
            raise StorageError(
                f"{path} is not a chat-shell session file ({exc.error_count()} problems);"
                " move it out of the history folder"
            ) from exc

    def _write(self, document: SessionDocument) -> None:
        path = self._path(document.session.id)
        data = document.model_dump_json().encode()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write {path}: {exc.strerror}") from exc

    async def _load(self, session_id: str) -> SessionDocument | None:
        return await asyncio.to_thread(self._read, self._path(session_id))

    async def _save(self, document: SessionDocument) -> None:
        await asyncio.to_thread(self._write, document)

    async def _remove(self, session_id: str) -> bool:
        try:
            await asyncio.to_thread(self._path(session_id).unlink)
        except FileNotFoundError:
            return False
        return True

    async def _all(self) -> list[SessionInfo]:
        def scan() -> list[SessionInfo]:
            sessions = []
            for path in self.folder.glob("*.json"):
                if path.name.startswith("."):
                    continue
                document = self._read(path)
                if document is not None:
                    sessions.append(document.session)
            return sessions

        return await asyncio.to_thread(scan)


class JSONStorage(StorageProvider):
    """History in a folder of JSON files (default: ``<chat-shell home>/history``)."""

    name = "json"
    shared_between_processes = True  # writes hold a lock file (flock)

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(path) if path is not None else default_home() / "history"
        self._history: JSONHistoryStorage | None = None

    @property
    def history(self) -> HistoryStorage:
        if self._history is None:
            raise StorageError("JSONStorage is not initialized: call `await storage.initialize()`")
        return self._history

    async def initialize(self) -> None:
        if self._history is not None:
            return
        folder = self.folder.expanduser().absolute()
        try:
            make_private_folder(folder)  # the chat-shell home above it too, if missing
        except OSError as exc:
            raise StorageError(
                f"cannot create history folder {folder}: {exc.strerror}; choose another path"
            ) from exc
        if not os.access(folder, os.W_OK):
            raise StorageError(f"history folder {folder} is not writable; choose another path")
        self._history = JSONHistoryStorage(folder)

    async def close(self) -> None:
        self._history = None
