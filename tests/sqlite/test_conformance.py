"""The core storage conformance suite, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from chat_shell import StorageProvider, create_storage
from chat_shell.testing import StorageConformance
from chat_shell_sqlite import SQLiteStorage


class TestSQLiteConformance(StorageConformance):
    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        return SQLiteStorage(path=tmp_path / "history.db")


class TestSQLiteThroughEntryPoint(StorageConformance):
    """The same suite on the backend as core finds it: through the entry point."""

    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        return create_storage("sqlite", path=str(tmp_path / "db" / "history.db"))
