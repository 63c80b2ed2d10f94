"""The SQLite run store passes the run-store conformance suite, two store objects on one file."""

from __future__ import annotations

from pathlib import Path

from chat_shell import RunStore, Settings, available_run_stores, run_store_from_settings
from chat_shell.testing import RunStoreSuite
from chat_shell_sqlite import SQLiteRunStore


class TestSQLiteRunStore(RunStoreSuite):
    async def make_store(self, tmp_path: Path) -> RunStore:
        return SQLiteRunStore(path=tmp_path / "history.db")


def test_the_sqlite_store_is_registered_and_follows_the_history(tmp_path: Path) -> None:
    assert "sqlite" in available_run_stores()
    store = run_store_from_settings(Settings(storage="sqlite", storage_path=str(tmp_path / "h.db")))
    assert isinstance(store, SQLiteRunStore)
    assert store.path == tmp_path / "h.db"
