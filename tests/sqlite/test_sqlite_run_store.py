"""The SQLite run store passes the run-store conformance suite, two store objects on one file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chat_shell import (
    EventType,
    Message,
    RunInfo,
    RunStore,
    SessionBusyError,
    Settings,
    available_run_stores,
    run_store_from_settings,
)
from chat_shell.testing import RunStoreSuite
from chat_shell_sqlite import SQLiteRunStore, SQLiteStorage


class TestSQLiteRunStore(RunStoreSuite):
    async def make_store(self, tmp_path: Path) -> RunStore:
        return SQLiteRunStore(path=tmp_path / "history.db")


def test_the_sqlite_store_is_registered_and_follows_the_history(tmp_path: Path) -> None:
    assert "sqlite" in available_run_stores()
    store = run_store_from_settings(Settings(storage="sqlite", storage_path=str(tmp_path / "h.db")))
    assert isinstance(store, SQLiteRunStore)
    assert store.path == tmp_path / "h.db"


def test_a_storage_url_set_for_postgres_leaves_the_sqlite_store_alone(tmp_path: Path) -> None:
    """`--storage sqlite` on a machine whose settings also name a PostgreSQL `storage_url`:
    the SQLite store takes its path, never the URL."""
    settings = Settings(
        storage="sqlite",
        storage_path=str(tmp_path / "h.db"),
        storage_url="postgresql://chat@127.0.0.1/chat",
    )
    store = run_store_from_settings(settings)
    assert isinstance(store, SQLiteRunStore)
    assert store.path == tmp_path / "h.db"


# -- real processes on one file ------------------------------------------------------------------

HOLDER = Path(__file__).with_name("_run_holder.py")


def test_processes_racing_for_a_session_have_one_winner(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, str(HOLDER), "claim", str(db), "contested", str(go)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        time.sleep(0.5)  # let them open the file (not a timing assertion: any order passes)
        go.touch()
        said = [racer.stdout.readline().split() for racer in racers if racer.stdout]
    finally:
        outputs = [racer.communicate(input="", timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    winners = [run_id for verdict, run_id in said if verdict == "won"]
    assert len(winners) == 1
    assert all(run_id == winners[0] for _, run_id in said)
    assert sorted(verdict for verdict, _ in said) == ["busy", "busy", "busy", "won"]


async def test_another_process_follows_and_cancels_a_run(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HOLDER),
        "hold",
        str(db),
        "s1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        run_id = (await asyncio.wait_for(holder.stdout.readline(), 60)).decode().strip()
        async with SQLiteRunStore(path=db) as store:
            with pytest.raises(SessionBusyError) as caught:
                await store.create_run(
                    RunInfo(run_id="run_" + "0" * 32, session_id="s1", created_at=time.time()),
                    lease_seconds=30,
                )
            assert caught.value.run_id == run_id
            events = []
            async with asyncio.timeout(60):  # a cancel never delivered fails, not hangs
                async for event in store.follow(run_id):
                    events.append(event)
                    if len(events) == 20:
                        assert await store.request_cancel(run_id)
            assert [e.seq for e in events] == list(range(len(events)))
            assert len(events) > 20
            assert events[-1].event_type is EventType.COMPLETE
            assert events[-1].data["status"] == "cancelled"
            info = await store.get_run(run_id)
            assert info.status == "cancelled"
            assert info.content == "".join(e.delta for e in events)
            assert await store.session_run("s1") is None
        assert (await asyncio.wait_for(holder.stdout.readline(), 60)).decode().strip() == (
            "cancelled"
        )
        assert await asyncio.wait_for(holder.wait(), 60) == 0
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_a_busy_session_is_neither_deleted_nor_cleared(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage, SQLiteRunStore(path=db) as runs:
        history = storage.history
        await history.append_messages("s1", [Message(role="user", content="hi")])
        info = RunInfo(run_id="run_" + "1" * 32, session_id="s1", created_at=time.time())
        await runs.create_run(info, lease_seconds=30)
        for refused in (history.delete_session, history.clear_history):
            with pytest.raises(SessionBusyError, match="run in progress") as caught:
                await refused("s1")
            assert caught.value.run_id == info.run_id
        assert [m.content for m in await history.get_history("s1")] == ["hi"]
        await history.append_messages("s2", [Message(role="user", content="other")])
        await history.delete_session("s2")  # another session is not held up
        ended = info.model_copy(update={"status": "completed", "finished_at": time.time()})
        assert await runs.finish_run(info.run_id, [], ended)
        await history.clear_history("s1")
        await history.delete_session("s1")


async def test_another_process_closing_the_file_leaves_this_one_s_writes_alone(
    tmp_path: Path,
) -> None:
    # This process opens the file three times (history, and the run store's two connections).
    # Reading the header of a file it already has open once dropped its locks (POSIX locks are
    # per process), so another process closing the file deleted the WAL, and the writes in it.
    db = tmp_path / "history.db"
    async with SQLiteStorage(path=db) as storage, SQLiteRunStore(path=db) as runs:
        other = "import asyncio, sys\nfrom chat_shell import Message\n" \
            "from chat_shell_sqlite import SQLiteStorage\n" \
            "async def main():\n" \
            "    async with SQLiteStorage(path=sys.argv[1]) as s:\n" \
            "        await s.history.append_messages('s', [Message(role='user', content='b')])\n" \
            "asyncio.run(main())\n"  # fmt: skip
        subprocess.run([sys.executable, "-c", other, str(db)], check=True, timeout=60)
        assert Path(f"{db}-wal").exists()
        await storage.history.append_messages("s", [Message(role="user", content="a")])
        info = RunInfo(run_id="run_" + "2" * 32, session_id="s", created_at=time.time())
        await runs.create_run(info, lease_seconds=30)
        reader = "import sqlite3, sys\n" \
            "c = sqlite3.connect(sys.argv[1])\n" \
            "print(c.execute('SELECT count(*) FROM messages').fetchone()[0]," \
            " c.execute('SELECT count(*) FROM runs').fetchone()[0])\n"  # fmt: skip
        seen = subprocess.run(
            [sys.executable, "-c", reader, str(db)], capture_output=True, text=True, timeout=60
        )
        assert seen.stdout.split() == ["2", "1"]
