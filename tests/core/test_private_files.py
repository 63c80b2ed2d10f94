"""Folders chat-shell makes are 0700 (every missing level), the files it keeps history in 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_shell import JSONStorage, Message, StorageError
from chat_shell._config import make_private_folder


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask (022), under which a plain ``mkdir`` makes folders 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_below(top: Path) -> dict[str, int]:
    """The mode of ``top`` and of everything under it, by path relative to ``top``'s parent."""
    found = {top.name: mode(top)}
    for path in top.rglob("*"):
        found[str(path.relative_to(top.parent))] = mode(path)
    return found


def test_every_missing_level_is_made_0700(tmp_path: Path) -> None:
    (tmp_path / "there").mkdir(mode=0o755)
    made = make_private_folder(tmp_path / "there" / "a" / "b" / "c")
    assert made == tmp_path / "there" / "a" / "b" / "c"
    assert mode(tmp_path / "there") == 0o755  # existing folders are left as they are
    assert modes_below(tmp_path / "there" / "a") == {"a": 0o700, "a/b": 0o700, "a/b/c": 0o700}
    assert make_private_folder(made) == made  # already there: nothing to do


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        make_private_folder(tmp_path / "file")
    with pytest.raises(NotADirectoryError):
        make_private_folder(tmp_path / "file" / "below")


@pytest.mark.parametrize(
    "where",
    ["default home", "home below missing folders", "storage path", "existing parent"],
)
async def test_json_storage_keeps_history_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    top = tmp_path / "top"
    if where == "default home":
        monkeypatch.setenv("CHAT_SHELL_HOME", str(top))
        storage = JSONStorage()
    elif where == "home below missing folders":
        monkeypatch.setenv("CHAT_SHELL_HOME", str(top / "config" / "chat-shell"))
        storage = JSONStorage()
    elif where == "storage path":
        storage = JSONStorage(top / "a" / "b" / "sessions")
    else:
        top.mkdir(mode=0o755)
        storage = JSONStorage(top / "history")
    await storage.initialize()
    await storage.history.append_messages("s1", [Message(role="user", content="hi")])
    await storage.history.append_messages("s1", [Message(role="assistant", content="hello")])
    await storage.close()
    created = modes_below(top)
    if where == "existing parent":
        assert created.pop("top") == 0o755
    files = {name: value for name, value in created.items() if (tmp_path / name).is_file()}
    folders = {name: value for name, value in created.items() if name not in files}
    assert len(files) == 2  # the session and the lock
    assert set(files.values()) == {0o600}, files
    assert set(folders.values()) == {0o700}, folders


async def test_json_storage_on_a_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot create history folder"):
        await JSONStorage(tmp_path / "file").initialize()
