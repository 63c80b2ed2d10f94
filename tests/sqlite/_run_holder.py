"""A run-holding process for the cross-process run-store tests (run as a script).

python _run_holder.py hold DB SESSION     claim SESSION, print the run id, then append a
    content event every 10 ms until a cancel arrives through the store; end the run
    ``cancelled`` and print "cancelled"
python _run_holder.py claim DB SESSION GO_FILE   once GO_FILE exists, try to claim SESSION;
    print "won RUN_ID" or "busy RUN_ID", and keep a won claim until stdin closes
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

from chat_shell import ChatEvent, EventType, RunInfo, SessionBusyError
from chat_shell_sqlite import SQLiteRunStore


def _info(session_id: str) -> RunInfo:
    now = time.time()
    return RunInfo(
        run_id=f"run_{uuid.uuid4().hex}",
        session_id=session_id,
        holder=f"holder-{uuid.uuid4().hex[:6]}",
        status="running",
        created_at=now,
        started_at=now,
    )


async def hold(db: str, session_id: str) -> int:
    async with SQLiteRunStore(path=db) as store:
        info = await store.create_run(_info(session_id), lease_seconds=30)
        print(info.run_id, flush=True)
        assert info.holder is not None
        cancelled = asyncio.Event()

        async def watch() -> None:
            async for run_id in store.watch_cancels(info.holder or ""):
                if run_id == info.run_id:
                    cancelled.set()

        watcher = asyncio.create_task(watch())
        seq = 0
        content = ""
        while not cancelled.is_set():
            delta = f"t{seq} "
            content += delta
            event = ChatEvent.make(
                EventType.CONTENT,
                {"delta": delta},
                run_id=info.run_id,
                session_id=session_id,
                seq=seq,
            )
            await store.append_events(
                info.run_id, [event], info.model_copy(update={"content": content})
            )
            seq += 1
            await asyncio.sleep(0.01)
        ended = info.model_copy(
            update={"status": "cancelled", "finished_at": time.time(), "content": content}
        )
        complete = ChatEvent.make(
            EventType.COMPLETE,
            {"status": "cancelled", "content": content, "usage": {}, "model": None},
            run_id=info.run_id,
            session_id=session_id,
            seq=seq,
        )
        assert await store.finish_run(info.run_id, [complete], ended)
        watcher.cancel()
        print("cancelled", flush=True)
    return 0


async def claim(db: str, session_id: str, go_file: str) -> int:
    async with SQLiteRunStore(path=db) as store:
        while not Path(go_file).exists():
            await asyncio.sleep(0.001)
        try:
            info = await store.create_run(_info(session_id), lease_seconds=30)
        except SessionBusyError as exc:
            print(f"busy {exc.run_id}", flush=True)
            return 0
        print(f"won {info.run_id}", flush=True)
        await asyncio.to_thread(sys.stdin.read)
    return 0


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    sys.exit(asyncio.run(hold(*args) if mode == "hold" else claim(*args)))
