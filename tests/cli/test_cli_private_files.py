"""Everything the CLI makes in a new chat-shell home is private: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Run


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask (022), inherited by the command: a plain ``mkdir`` makes 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home below folders that do not exist yet (overrides the conftest's)."""
    return tmp_path / "top" / "config" / "chat-shell"


def assert_private(top: Path) -> None:
    folders = {str(p): stat.S_IMODE(p.stat().st_mode) for p in [top, *top.rglob("*")] if p.is_dir()}
    files = {str(p): stat.S_IMODE(p.stat().st_mode) for p in top.rglob("*") if p.is_file()}
    assert files
    assert set(folders.values()) == {0o700}, folders
    assert set(files.values()) == {0o600}, files


@pytest.mark.parametrize(
    "args",
    [
        ("query", "hello", "--storage", "json"),
        ("query", "hello", "--storage", "sqlite"),
        ("config", "set", "model", "openai/gpt-4o-mini"),
        ("config", "init"),
    ],
    ids=["json history", "sqlite history", "config set", "config init"],
)
def test_a_new_home_is_private(cli: Run, home: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert home.is_dir()
    assert_private(tmp_path / "top")
