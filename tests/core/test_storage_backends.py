"""Core's own backends against the storage conformance suite, plus what only JSON files need."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from chat_shell import (
    JSONStorage,
    MemoryStorage,
    Message,
    StorageError,
    StorageProvider,
    UserError,
    create_storage,
)
from chat_shell.testing import StorageConformance


class TestMemoryStorage(StorageConformance):
    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        return MemoryStorage()


class TestJSONStorage(StorageConformance):
    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        return JSONStorage(tmp_path / "history")


async def test_json_files_are_private_and_written_whole(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "history"
    async with JSONStorage(folder) as storage:
        await storage.history.append_messages("s1", [Message(role="user", content="secret")])
        await storage.history.append_messages("s1", [Message(role="assistant", content="ok")])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert files == [".lock", "s1.json"]  # no temporary files left behind
    assert stat.S_IMODE((folder / "s1.json").stat().st_mode) == 0o600


async def test_json_storage_survives_a_restart(tmp_path: Path) -> None:
    async with JSONStorage(tmp_path) as storage:
        await storage.history.append_messages("s1", [Message(role="user", content="remember me")])
    async with JSONStorage(tmp_path) as storage:
        assert (await storage.history.get_history("s1"))[0].content == "remember me"


@pytest.mark.parametrize("session_id", ["../../etc/x", "../escape", "/abs", "a/../../b", "%2e%2e"])
async def test_json_session_ids_cannot_escape_the_folder(tmp_path: Path, session_id: str) -> None:
    folder = tmp_path / "history"
    async with JSONStorage(folder) as storage:
        with pytest.raises(UserError, match="invalid session id"):
            await storage.history.append_messages(session_id, [Message(role="user", content="x")])
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"] == []


async def test_a_corrupt_file_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "s1.json").write_text("{not json")
    async with JSONStorage(tmp_path) as storage:
        with pytest.raises(StorageError, match=r"s1\.json is not a chat-shell session file"):
            await storage.history.get_history("s1")
        with pytest.raises(StorageError):
            await storage.history.append_messages("s1", [Message(role="user", content="x")])
    assert (tmp_path / "s1.json").read_text() == "{not json"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
async def test_read_only_folder_is_a_clear_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="choose another path"):
            await JSONStorage(tmp_path / "history").initialize()
    finally:
        tmp_path.chmod(0o700)


async def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "history").write_text("I am a file")
    with pytest.raises(StorageError, match="cannot create history folder"):
        await JSONStorage(tmp_path / "history").initialize()


def test_backends_come_from_entry_points(tmp_path: Path) -> None:
    assert isinstance(create_storage("memory"), MemoryStorage)
    json_storage = create_storage("json", path=str(tmp_path))
    assert isinstance(json_storage, JSONStorage)
    assert json_storage.folder == tmp_path
    with pytest.raises(UserError, match="unknown storage backend 'nope'"):
        create_storage("nope")


def test_options_a_backend_does_not_take_are_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="storage backend 'remote' does not take these options"):
        create_storage("remote", url="http://127.0.0.1:9", path=str(tmp_path))
    with pytest.raises(UserError, match="storage backend 'memory' does not take these options"):
        create_storage("memory", path=str(tmp_path))
    assert create_storage("memory", path=None) is not None  # None: not given
