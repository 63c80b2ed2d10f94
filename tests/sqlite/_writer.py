"""A writer process for the multi-process tests (run as a script, not collected by pytest).

python _writer.py concurrent DB NAME COUNT GO_FILE   append COUNT messages to session
    "shared", one per transaction, once GO_FILE exists; exit 1 on any error
python _writer.py stream DB START                    append batches of 3 messages forever,
    printing each batch number once its append has returned
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from pathlib import Path

from chat_shell import Message
from chat_shell_sqlite import SQLiteStorage


async def concurrent(db: str, name: str, count: int, go_file: str) -> int:
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            print("go file never appeared", file=sys.stderr)
            return 2
        await asyncio.sleep(0.001)
    errors = 0
    async with SQLiteStorage(path=db) as storage:
        for i in range(count):
            try:
                await storage.history.append_messages(
                    "shared", [Message(role="user", content=f"{name}-{i}")]
                )
            except Exception:
                errors += 1
                traceback.print_exc()
    print(f"errors={errors}")
    return 1 if errors else 0


async def stream(db: str, start: int) -> int:
    async with SQLiteStorage(path=db) as storage:
        batch = start
        while True:
            await storage.history.append_messages(
                f"s{batch % 5}",
                [Message(role="user", content=f"b{batch}-{part}") for part in range(3)],
            )
            print(batch, flush=True)
            batch += 1


def main(argv: list[str]) -> int:
    if argv[0] == "concurrent":
        return asyncio.run(concurrent(argv[1], argv[2], int(argv[3]), argv[4]))
    if argv[0] == "stream":
        return asyncio.run(stream(argv[1], int(argv[2])))
    print(f"unknown mode {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
