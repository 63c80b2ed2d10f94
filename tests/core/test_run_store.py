"""The memory run store passes the run-store conformance suite; stores are found by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from chat_shell import (
    MemoryRunStore,
    RunStore,
    Settings,
    UserError,
    available_run_stores,
    create_run_store,
    run_store_from_settings,
)
from chat_shell.testing import RunStoreSuite


class TestMemoryRunStore(RunStoreSuite):
    async def make_store(self, tmp_path: Path) -> RunStore:
        return MemoryRunStore()

    async def make_peer(self, store: RunStore, tmp_path: Path) -> RunStore:
        assert isinstance(store, MemoryRunStore)
        return MemoryRunStore.sharing(store)


def test_the_memory_store_is_registered() -> None:
    assert "memory" in available_run_stores()
    assert isinstance(create_run_store("memory"), MemoryRunStore)


def test_an_unknown_store_says_what_is_installed() -> None:
    with pytest.raises(UserError, match=r"unknown run store 'nosuch' \(installed: .*memory"):
        create_run_store("nosuch")
    # a store that is not installed names its package; installed, it asks for what it lacks
    expected = (
        "needs a database URL"
        if "postgres" in available_run_stores()
        else "pip install chat-shell-postgres"
    )
    with pytest.raises(UserError, match=expected):
        create_run_store("postgres")


def test_the_run_store_follows_the_history_backend() -> None:
    assert run_store_from_settings(Settings(storage="memory")).name == "memory"
    # a history backend without a run store of its own: runs stay in memory
    assert run_store_from_settings(Settings(storage="json")).name == "memory"
    assert run_store_from_settings(Settings(storage="json", run_store="memory")).name == "memory"
    with pytest.raises(UserError, match="unknown run store"):
        run_store_from_settings(Settings(storage="memory", run_store="nosuch"))


def test_an_option_the_store_does_not_take_says_so(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run store 'memory' does not take these options"):
        create_run_store("memory", path=str(tmp_path))
    assert isinstance(create_run_store("memory", path=None), MemoryRunStore)  # None: not given


def test_a_plugin_that_makes_no_run_store_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "hollow_store-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hollow-store\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[chat_shell.runs]\nhollow = hollow_store:make\n")
    (tmp_path / "hollow_store.py").write_text("def make():\n    return object()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hollow_store", raising=False)
    assert "hollow" in available_run_stores()
    with pytest.raises(UserError, match="run store plugin 'hollow' did not return a RunStore"):
        create_run_store("hollow")
