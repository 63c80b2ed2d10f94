"""Several real processes on one SQLite file: concurrent writers, and writers killed mid-stream."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from chat_shell_sqlite import SQLiteStorage
from sqlite_support import query

WRITER = Path(__file__).with_name("_writer.py")


def test_two_processes_write_2000_messages_with_no_error_and_no_loss(tmp_path: Path) -> None:
    db = tmp_path / "data" / "history.db"  # neither process finds a database: both create it
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), "concurrent", str(db), name, "1000", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    go.touch()
    outputs = [writer.communicate(timeout=120) for writer in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert out.strip() == "errors=0"
        assert "locked" not in err
    contents = [row[0] for row in query(db, "SELECT content FROM messages ORDER BY id")]
    assert len(contents) == 2000
    for name in ("a", "b"):
        assert [c for c in contents if str(c).startswith(f"{name}-")] == [
            f"{name}-{i}" for i in range(1000)
        ]
    assert query(db, "SELECT message_count FROM sessions WHERE id = 'shared'") == [(2000,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]

    async def search(word: str) -> list[str]:
        async with SQLiteStorage(path=db) as storage:
            return sorted(h.message.content or "" for h in await storage.search(word, limit=5))

    # both processes' messages are searchable, indexed in batches or by the search itself
    assert asyncio.run(search("999")) == ["a-999", "b-999"]
    assert asyncio.run(search("0")) == ["a-0", "b-0"]


@pytest.mark.slow
def test_writer_killed_20_times_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    rng = random.Random(20)
    acknowledged: set[int] = set()
    for round_ in range(20):
        start = round_ * 1_000_000
        with subprocess.Popen(
            [sys.executable, str(WRITER), "stream", str(db), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as writer:
            assert writer.stdout is not None
            wanted = rng.randint(1, 60)
            seen = 0
            while seen < wanted:
                line = writer.stdout.readline()
                assert line, "the writer stopped before it was killed"
                acknowledged.add(int(line))
                seen += 1
            os.kill(writer.pid, signal.SIGKILL)  # mid-stream: it is busy appending
            rest = writer.stdout.read()  # acknowledgements still in the pipe count too
            acknowledged.update(int(line) for line in rest.split())
            writer.wait()
            assert writer.returncode == -signal.SIGKILL

        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        stored = [str(row[0]) for row in query(db, "SELECT content FROM messages")]
        per_batch = Counter(content.split("-")[0] for content in stored)
        assert set(per_batch.values()) == {3}, "an append was stored in part"
        missing = {f"b{batch}" for batch in acknowledged} - set(per_batch)
        assert not missing, f"round {round_}: acknowledged but lost: {sorted(missing)[:5]}"
        counts = query(
            db,
            "SELECT s.id, s.message_count, count(m.id) FROM sessions s"
            " LEFT JOIN messages m ON m.session_id = s.id GROUP BY s.id",
        )
        assert all(row[1] == row[2] for row in counts)
