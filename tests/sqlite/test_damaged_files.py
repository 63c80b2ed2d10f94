"""Damaged database files: each is reported as corrupt (or not a chat-shell history), in a
``StorageError`` that names the file, never as a file from a newer version, never as an
internal error."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from chat_shell import Message, StorageError
from chat_shell_sqlite import SCHEMA_VERSION, SQLiteStorage
from sqlite_support import query

PAGE = 4096


async def _history_file(path: Path) -> None:
    async with SQLiteStorage(path=path) as storage:
        for n in range(40):
            await storage.history.append_messages(
                f"session-{n}",
                [
                    Message(role="user", content=f"question {n} about birch and cedar"),
                    Message(role="assistant", content="an answer " * 20, metadata={"n": n}),
                ],
            )
        await storage.search("birch")
    # closed: the last connection checkpointed the WAL into the file and removed it
    assert not Path(f"{path}-wal").exists()


async def _use(path: Path) -> None:
    """Open the file and read everything a user can read."""
    async with SQLiteStorage(path=path) as storage:
        history = storage.history
        for info in await history.list_sessions(limit=1000):
            await history.get_history(info.id)
        await storage.search("birch cedar")
        await history.integrity_check()


async def _assert_reported_clearly(path: Path) -> None:
    try:
        await _use(path)
    except StorageError as exc:
        text = str(exc)
        assert str(path) in text, text
        assert "newer" not in text, text


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE chat_shell_migrations SET version = 90 WHERE version = 3",
        "UPDATE chat_shell_migrations SET version = 90 WHERE version = 1",
        f"UPDATE chat_shell_migrations SET version = {SCHEMA_VERSION + 1} WHERE version = 2",
        "DELETE FROM chat_shell_migrations WHERE version = 2",
        "DELETE FROM chat_shell_migrations",
    ],
)
async def test_a_damaged_migrations_table_is_corrupt_not_newer(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "history.db"
    await _history_file(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(damage)
        conn.commit()
    before = db.read_bytes()
    storage = SQLiteStorage(path=db)
    with pytest.raises(StorageError) as caught:
        await storage.initialize()
    await storage.close()
    text = str(caught.value)
    assert text.startswith(f"{db} is corrupt (its chat_shell_migrations table records"), text
    assert "newer" not in text
    assert db.read_bytes() == before  # left untouched


async def test_a_newer_file_is_still_told_apart_from_a_damaged_one(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    await _history_file(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for version in range(SCHEMA_VERSION + 1, SCHEMA_VERSION + 3):
            conn.execute(
                "INSERT INTO chat_shell_migrations VALUES (?, 'from the future', 0)", (version,)
            )
        conn.commit()
    storage = SQLiteStorage(path=db)
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 2}") as caught:
        await storage.initialize()
    await storage.close()
    assert "newer chat-shell-sqlite" in str(caught.value)


def _root_page(path: Path, table: str) -> int:
    (row,) = query(path, "SELECT rootpage FROM sqlite_master WHERE name = ?", table)
    page = row[0]
    assert isinstance(page, int)
    return page


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("original") / "history.db"
    asyncio.run(_history_file(path))
    return path


@pytest.mark.parametrize("seed", range(90))
async def test_random_damage_is_reported_clearly(original: Path, tmp_path: Path, seed: int) -> None:
    """Bytes changed anywhere, a page overwritten, or bytes of the cells that record the steps
    applied: whatever SQLite still reads, every failure is a clear ``StorageError``."""
    pages = original.stat().st_size // PAGE
    migrations_page = _root_page(original, "chat_shell_migrations")
    rng = random.Random(seed)
    db = tmp_path / "history.db"
    shutil.copy(original, db)
    data = bytearray(db.read_bytes())
    kind = seed % 3
    if kind == 0:  # a few bytes anywhere after the header
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(100, len(data))] = rng.randrange(256)
    elif kind == 1:  # one page of garbage
        page = rng.randrange(1, pages)
        data[page * PAGE : (page + 1) * PAGE] = rng.randbytes(PAGE)
    else:  # the cells of the page that records the steps applied (its versions among them)
        start = (migrations_page - 1) * PAGE
        cells = int.from_bytes(data[start + 5 : start + 7], "big")  # where the cells begin
        for _ in range(rng.randint(1, 3)):
            data[start + rng.randrange(cells, PAGE)] = rng.randrange(256)
    db.write_bytes(bytes(data))
    await _assert_reported_clearly(db)
