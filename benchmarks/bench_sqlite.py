"""Benchmark of the SQLite history backend on 1,000,000 messages in 10,000 sessions.

    .venv/bin/python benchmarks/bench_sqlite.py [--sessions 10000] [--per-session 100]

Builds the database itself in a temporary folder (bulk inserts straight through sqlite3, in big
transactions), then measures through the public async API, one call at a time:

- append: one message per call, so one transaction per message (WAL, synchronous=NORMAL), both
  end to end through the async API and as the SQLite transaction alone in the storage thread;
- get_history of a 100-message session;
- the first page (50) of list_sessions;
- a full-text search;
- the worker hand-off alone (an empty call to the storage thread), to show what part of each
  number is the trip from the event loop to the storage thread and back.

Prints a JSON result, then the same numbers as a markdown table. Goals (from the issue): append
p50 <= 50 us, get_history p50 <= 0.5 ms and p99 <= 5 ms, first page of list_sessions <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chat_shell import Message
from chat_shell_sqlite import SQLiteStorage
from chat_shell_sqlite._storage import append_rows, message_rows

WORDS = [
    "agent",
    "tool",
    "model",
    "session",
    "history",
    "storage",
    "python",
    "sqlite",
    "bread",
    "coffee",
    "weather",
    "paris",
    "lisbon",
    "answer",
    "question",
    "result",
    "error",
    "retry",
    "stream",
    "token",
    "cache",
    "index",
    "table",
    "query",
    "search",
]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build(path: Path, sessions: int, per_session: int, seed: int = 1) -> float:
    """Fill the database; returns seconds taken."""
    started = time.perf_counter()
    rng = random.Random(seed)
    base = time.time() - 86_400 * 30
    assistant_meta = json.dumps(
        {
            "model": "openai/gpt-4o-mini",
            "usage": {"total_tokens": 120},
            "status": "completed",
            "latency_ms": 850.0,
        },
        separators=(",", ":"),
    )
    tool_calls = json.dumps(
        [{"id": "call_1", "name": "search", "arguments": {"q": "weather"}}], separators=(",", ":")
    )
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous = OFF")  # building only; the storage uses NORMAL
        batch_sessions = 500
        for first in range(0, sessions, batch_sessions):
            conn.execute("BEGIN")
            session_rows = []
            message_rows: list[tuple[Any, ...]] = []
            for s in range(first, min(first + batch_sessions, sessions)):
                sid = f"session-{s:06d}"
                created = base + s * 200
                session_rows.append(
                    (
                        sid,
                        f"Chat {s}",
                        f"user-{s % 100}",
                        created,
                        created + rng.random() * 1e6,
                        per_session,
                        "{}",
                    )
                )
                for i in range(per_session):
                    ts = created + i
                    kind = i % 4
                    if kind == 0:  # with a rare word, for the search benchmark
                        text = f"{_text(rng, 12)} topic{rng.randrange(20_000)}"
                        row = ("user", text, None, None, None, ts, "{}")
                    elif kind == 1:
                        row = ("assistant", None, tool_calls, None, None, ts, assistant_meta)
                    elif kind == 2:
                        row = ("tool", _text(rng, 20), None, "call_1", "search", ts, "{}")
                    else:
                        row = ("assistant", _text(rng, 30), None, None, None, ts, assistant_meta)
                    message_rows.append((sid, *row))
            conn.executemany(
                "INSERT INTO sessions (id, title, owner, created_at, updated_at, message_count,"
                " metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                session_rows,
            )
            conn.executemany(
                "INSERT INTO messages (session_id, role, content, tool_calls, tool_call_id, name,"
                " timestamp, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                message_rows,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    return time.perf_counter() - started


async def _timed(n: int, make: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await make(i)
        samples.append(time.perf_counter() - t0)
    return samples


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "n": len(ordered),
    }


async def measure(path: Path, sessions: int, seed: int = 2) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    ids = [f"session-{s:06d}" for s in range(sessions)]
    async with SQLiteStorage(path=path) as storage:
        history = storage.history
        worker = history._worker
        # warm up: page cache, statement cache, thread
        for sid in rng.sample(ids, 200):
            await history.get_history(sid)
        await history.list_sessions()

        results = {}
        results["worker hand-off (empty call)"] = _stats(
            await _timed(2000, lambda i: worker.call(lambda conn: None))
        )
        message = Message(role="user", content="how is the weather in lisbon today?")
        targets = [rng.choice(ids) for _ in range(6000)]

        def in_thread(conn: sqlite3.Connection) -> list[float]:
            samples = []
            for sid in targets[3000:]:
                t0 = time.perf_counter()
                append_rows(conn, sid, message_rows(sid, [message]), None)
                samples.append(time.perf_counter() - t0)
            return samples

        results["append, the SQLite transaction alone (in the storage thread)"] = _stats(
            await worker.call(in_thread)
        )
        results["append (1 message, 1 transaction)"] = _stats(
            await _timed(3000, lambda i: history.append_messages(targets[i], [message]))
        )
        untouched = sorted(set(ids) - set(targets))  # sessions still at exactly 100 messages
        reads = [rng.choice(untouched or ids) for _ in range(3000)]
        lengths = set()

        async def read(i: int) -> None:
            lengths.add(len(await history.get_history(reads[i])))

        results["get_history (100 messages)"] = _stats(await _timed(3000, read))
        results["list_sessions first page (50)"] = _stats(
            await _timed(1000, lambda i: history.list_sessions(limit=50))
        )
        results["list_sessions first page of one owner"] = _stats(
            await _timed(1000, lambda i: history.list_sessions(limit=50, owner=f"user-{i % 100}"))
        )
        results["search (a rare word, ~12 hits)"] = _stats(
            await _timed(500, lambda i: history.search(f"topic{i}"))
        )
        assert len(lengths) == 1 or not untouched, lengths
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--per-session", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chat-shell-bench-") as folder:
        path = Path(folder) / "history.db"

        async def create() -> None:
            async with SQLiteStorage(path=path):
                pass

        asyncio.run(create())
        build_s = build(path, args.sessions, args.per_session)
        size_mb = path.stat().st_size / 1e6
        results = asyncio.run(measure(path, args.sessions))
    report = {
        "sqlite": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
        "sessions": args.sessions,
        "messages": args.sessions * args.per_session,
        "build_seconds": round(build_s, 1),
        "database_mb": round(size_mb, 1),
        "results": results,
    }
    print(json.dumps(report, indent=2))
    print()
    scale = f"{report['messages']:,} messages, {args.sessions:,} sessions"
    print(f"| operation ({scale}) | p50 | p99 |")
    print("| --- | ---: | ---: |")
    for name, stats in results.items():
        print(f"| {name} | {stats['p50_us']:,.0f} µs | {stats['p99_us']:,.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
