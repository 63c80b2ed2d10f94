"""A history file opened read-only: everything reads (search too), every write is refused."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from chat_shell import Message, SessionInfo, StorageError, UserError
from chat_shell_sqlite import SCHEMA_VERSION, SQLiteHistoryStorage, SQLiteStorage
from sqlite_support import query


async def _history_file(db: Path) -> None:
    """Two sessions; the newest messages wait for the search index (no search ran since)."""
    async with SQLiteStorage(path=db) as storage:
        history = storage.history
        await history.append_messages("trip", [Message(role="user", content="lisbon tram")])
        await history.update_session("trip", title="Trip")
        assert len(await storage.search("tram")) == 1
        await history.append_messages(
            "trip", [Message(role="assistant", content="take tram 28 in lisbon")]
        )
        await history.append_messages("cook", [Message(role="user", content="bake bread")])
    mark = "SELECT indexed_upto, (SELECT max(id) FROM messages) FROM messages_fts_state"
    assert query(db, mark) == [(1, 3)]


Write = Callable[[SQLiteHistoryStorage], Awaitable[object]]
WRITES: dict[str, Write] = {
    "append": lambda h: h.append_messages("trip", [Message(role="user", content="x")]),
    "append to a new session": lambda h: h.append_messages("new", [Message(role="user")]),
    "clear": lambda h: h.clear_history("trip"),
    "truncate": lambda h: h.truncate_history("trip", 1),
    "delete": lambda h: h.delete_session("cook"),
    "update": lambda h: h.update_session("trip", title="New"),
    "import": lambda h: h.import_session(SessionInfo(id="new", created_at=0, updated_at=0), []),
}


async def test_read_only_reads_everything_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    await _history_file(db)
    before = db.read_bytes()
    async with SQLiteStorage(path=db, read_only=True) as storage:
        history = storage.history
        assert history.read_only
        assert [info.id for info in await history.list_sessions()] == ["cook", "trip"]
        assert (await history.get_session("trip")).title == "Trip"
        assert [m.content for m in await history.get_history("trip")] == [
            "lisbon tram",
            "take tram 28 in lisbon",
        ]
        # the messages waiting for the index are found all the same, with snippets
        hits = await storage.search("lisbon tram")
        assert sorted(hit.snippet for hit in hits) == [
            "**lisbon** **tram**",
            "take **tram** 28 in **lisbon**",
        ]
        assert [h.session_id for h in await storage.search("bread")] == ["cook"]
        assert [h.session_id for h in await storage.search("tram", session_id="cook")] == []
        exported = [line async for line in storage.export_sessions(["cook"])]
        assert [json.loads(line)["type"] for line in exported] == ["session", "message"]
        assert await history.integrity_check() == "ok"
        for name, write in WRITES.items():
            with pytest.raises(StorageError, match="is open read-only") as caught:
                await write(history)
            assert str(db) in str(caught.value), name
    assert db.read_bytes() == before
    # the search left the waiting messages waiting: the file's own index did not move
    assert query(db, "SELECT indexed_upto FROM messages_fts_state") == [(1,)]


async def test_read_only_sees_what_another_storage_writes(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    await _history_file(db)
    async with (
        SQLiteStorage(path=db) as writer,
        SQLiteStorage(path=db, read_only=True) as reader,
    ):
        await writer.history.append_messages("cook", [Message(role="user", content="rye bread")])
        assert len(await reader.search("bread")) == 2
        assert len(await writer.search("bread")) == 2  # now indexed: the reader finds them once
        assert len(await reader.search("bread")) == 2
        await writer.history.delete_session("cook")
        assert await reader.search("bread") == []


async def test_read_only_needs_an_existing_current_history(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "history.db"
    with pytest.raises(StorageError, match="no history database at"):
        await SQLiteStorage(path=missing, read_only=True).initialize()
    assert not missing.parent.exists()

    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StorageError, match="empty file, not a chat-shell history yet"):
        await SQLiteStorage(path=empty, read_only=True).initialize()
    assert empty.read_bytes() == b""

    old = tmp_path / "old.db"
    await _history_file(old)
    with contextlib.closing(sqlite3.connect(old)) as conn:
        conn.execute(f"DELETE FROM chat_shell_migrations WHERE version = {SCHEMA_VERSION}")
        conn.commit()
    with pytest.raises(StorageError, match=f"is at schema version {SCHEMA_VERSION - 1}") as caught:
        await SQLiteStorage(path=old, read_only=True).initialize()
    assert "make it writable and open it once" in str(caught.value)


def test_read_only_is_true_false_or_auto() -> None:
    with pytest.raises(UserError, match="read_only"):
        SQLiteStorage(read_only="yes")  # type: ignore[arg-type]


# -- files this process may not write --------------------------------------------------------------

# Run in a child process, which gives up root (root may write anything) once everything is
# imported. It opens the file each way asked and prints what happened, as JSON.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from chat_shell import Message
    from chat_shell_sqlite import SQLiteStorage

    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)

    async def attempt(path, read_only):
        storage = SQLiteStorage(path=path, read_only=read_only)
        try:
            await storage.initialize()
            history = storage.history
            done = {
                "read_only": history.read_only,
                "sessions": [info.id for info in await history.list_sessions()],
                "found": sorted(hit.message.content for hit in await storage.search("tram")),
                "check": await history.integrity_check(),
            }
            try:
                await history.append_messages("trip", [Message(role="user", content="x")])
                done["write"] = "written"
            except Exception as exc:
                done["write"] = f"{type(exc).__name__}: {exc}"
            return done
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            await storage.close()

    async def main():
        path = sys.argv[1]
        print(json.dumps({str(mode): await attempt(path, mode) for mode in ("auto", False)}))

    asyncio.run(main())
    """
)


def _as_another_user(db: Path) -> dict[str, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("folder_writable", [True, False])
async def test_a_write_protected_file_opens_read_only_with_auto(folder_writable: bool) -> None:
    base = Path(tempfile.mkdtemp(prefix="chat-shell-ro-"))
    try:
        base.chmod(0o755)
        folder = base / "home"
        folder.mkdir()
        db = folder / "history.db"
        await _history_file(db)
        db.chmod(0o444)
        folder.chmod(0o777 if folder_writable else 0o555)
        before = db.read_bytes()
        outcome = _as_another_user(db)
        auto = outcome["auto"]
        assert auto["read_only"] is True, auto
        assert auto["sessions"] == ["cook", "trip"]
        assert auto["found"] == ["lisbon tram", "take tram 28 in lisbon"]
        assert auto["check"] == "ok"
        assert f"StorageError: {db} is open read-only" in str(auto["write"])
        # asked to write, the file is refused at once, with what to do
        refused = str(outcome["False"]["error"])
        assert refused.startswith(f"StorageError: {db} is read-only ("), refused
        assert "make it writable" in refused
        assert db.read_bytes() == before
        if not folder_writable:
            assert sorted(p.name for p in folder.iterdir()) == ["history.db"]
    finally:
        for path in (base, *base.rglob("*")):
            if path.is_dir():
                path.chmod(0o755)
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        base.rmdir()


async def test_auto_opens_a_writable_file_for_writing(tmp_path: Path) -> None:
    for _ in range(2):  # a new file, then the existing one
        async with SQLiteStorage(path=tmp_path / "h.db", read_only="auto") as storage:
            assert not storage.history.read_only
            await storage.history.append_messages("s", [Message(role="user", content="x")])
    assert query(tmp_path / "h.db", "SELECT count(*) FROM messages") == [(2,)]
