"""Benchmark of the PostgreSQL history backend on 1,000,000 messages in 10,000 sessions.

    .venv/bin/python benchmarks/bench_postgres.py [--sessions 10000] [--per-session 100] [--quick]

``--quick`` (for ``make bench-quick``, which must stay short) builds 20,000 messages in 200
sessions instead.

Uses the server named by ``CHAT_SHELL_BENCH_POSTGRES`` or ``CHAT_SHELL_TEST_POSTGRES_URL`` (a new
database on it, dropped after), else starts a throw-away one with ``tests/postgres/server.sh start
DIR --durable`` (fsync on, as a real server; ``pg_server.py``). Without PostgreSQL the goal's row
fails with the reason. Builds the messages inside the server (one ``INSERT … SELECT``, the backend's
own schema, indexes and search vectors), then measures through the public async API, one call at
a time, on one event loop, the database on the same 2-core machine:

- get_history of a 100-message session (the goal: p50 ≤ 2 ms with 1,000,000 stored);
- the first page (50) of list_sessions, and of one owner's sessions;
- a full-text search of a word in 100 messages;
- append of one message (a transaction, committed to disk).

Also the CPU time this process spent per call (``time.process_time``: the driver, the pool and
the messages' validation, without the server's work or the machine's other load).

Prints a markdown table, then one JSON line (``rows``, read by ``benchmarks/run.py``). Wall-clock
latencies (what a request waits, the database's work included); medians and p99 over interleaved
calls on random sessions. Timings on a shared machine move by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from chat_shell import Message
from chat_shell_postgres import PostgresStorage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_server import PostgresUnavailable, database, given_url, server, unavailable

GET_HISTORY = "get_history (100 messages)"
LIST = "list_sessions (first 50)"
LIST_OWNER = "list_sessions (one owner, first 50)"
SEARCH = "search (a word in 100 messages)"
APPEND = "append (1 message)"
GOALS = [(GET_HISTORY, "p50_us", 2000.0)]

# Every message of session n; its content names the session's topic (topic<n>) among filler.
BUILD = [
    """
INSERT INTO chat_shell_sessions (id, title, owner, created_at, updated_at, message_count, metadata)
SELECT 's' || n, 'session ' || n, 'user-' || (n %% 100), 1.7e9 + n, 1.7e9 + n, %(per)s, '{}'
FROM generate_series(0, %(sessions)s - 1) AS n
""",
    """
INSERT INTO chat_shell_messages (session_id, role, content, tool_calls, tool_call_id, name,
                                 timestamp, metadata, words)
SELECT 's' || n, CASE WHEN k %% 2 = 0 THEN 'user' ELSE 'assistant' END, body, NULL, NULL, NULL,
       1.7e9 + n + k / 1000.0,
       CASE WHEN k %% 2 = 0 THEN '{}' ELSE
            '{"model":"openai/gpt-4o-mini","usage":{"total_tokens":42},"status":"completed"}' END,
       to_tsvector('simple', body)
FROM generate_series(0, %(sessions)s - 1) AS n,
     generate_series(0, %(per)s - 1) AS k,
     LATERAL (SELECT 'message ' || k || ' of topic' || n || ' about the agent, its tools and'
                     || ' the weather in lisbon, with some more words to make it a real line'
                     AS body) AS b
""",
    "ANALYZE",
]


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
        "n": len(ordered),
    }


async def measure(url: str, sessions: int, calls: int) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    samples: dict[str, list[float]] = {GET_HISTORY: [], LIST: [], LIST_OWNER: [], SEARCH: []}
    samples[APPEND] = []
    cpu: dict[str, list[float]] = {name: [] for name in samples}
    message = Message(role="user", content="how is the weather in lisbon today?")
    async with PostgresStorage(url) as storage:
        history = storage.history
        operations: dict[str, Callable[[int], Awaitable[Any]]] = {
            GET_HISTORY: lambda n: history.get_history(f"s{n}", limit=100),
            LIST: lambda n: history.list_sessions(limit=50),
            LIST_OWNER: lambda n: history.list_sessions(limit=50, owner=f"user-{n % 100}"),
            SEARCH: lambda n: history.search(f"topic{n}", limit=20),
            APPEND: lambda n: history.append_messages(f"s{n}", [message]),
        }
        for operation in operations.values():  # warm: prepared statements, caches
            for _ in range(20):
                await operation(rng.randrange(sessions))
        for _ in range(calls):  # interleaved: one call of each in turn
            for name, operation in operations.items():
                n = rng.randrange(sessions)
                c0, t0 = time.process_time(), time.perf_counter()
                await operation(n)
                samples[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        assert len(await history.get_history("s0", limit=100)) == 100
    return {
        name: {**_stats(values), "cpu_p50_us": statistics.median(cpu[name]) * 1e6}
        for name, values in samples.items()
    }


def rows(results: dict[str, dict[str, float]], messages: int, where: str) -> list[dict[str, Any]]:
    out = []
    size = f"{messages:,} messages"
    for name, statistic, limit in GOALS:
        value = results[name][statistic]
        out.append(
            {
                "metric": f"PostgreSQL ({size}): {name}, {statistic[:3]}",
                "ours": round(value, 1),
                "unit": "µs",
                "goal": f"≤ {limit:,.0f}",
                "pass": value <= limit,
            }
        )
    goals = {name for name, _, _ in GOALS}
    for name, stats in results.items():
        if name not in goals:
            out.append(
                {
                    "metric": f"PostgreSQL ({size}): {name}, p50",
                    "ours": round(stats["p50_us"], 1),
                    "unit": "µs",
                    "goal": "(reference)",
                }
            )
    cpu = "; ".join(f"{name} {stats['cpu_p50_us']:,.0f} µs" for name, stats in results.items())
    out[0]["note"] = f"chat-shell's own CPU per call (this process), p50: {cpu}. {where}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--per-session", type=int, default=100)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="20,000 messages")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.calls = 200, 100
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(database(stack.enter_context(server())))
        except PostgresUnavailable as exc:
            print(exc, file=sys.stderr)
            what, which, most = GOALS[0]
            missed = unavailable(
                f"PostgreSQL history: {what}, {which[:3]}", f"≤ {most:,.0f}", str(exc)
            )
            print(
                json.dumps({"benchmark": "postgres history", "rows": [missed]}, ensure_ascii=False)
            )
            return 0

        async def create() -> None:
            async with PostgresStorage(url):
                pass

        asyncio.run(create())
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in BUILD:
                parameters = {"sessions": args.sessions, "per": args.per_session}
                conn.execute(statement.encode(), parameters if "%(" in statement else None)
            version = conn.execute("SHOW server_version").fetchone()
        build_s = time.perf_counter() - started
        results = asyncio.run(measure(url, args.sessions, args.calls))
    messages = args.sessions * args.per_session
    limits = {(name, statistic): limit for name, statistic, limit in GOALS}
    print(
        f"| operation ({messages:,} messages, {args.sessions:,} sessions) | p50 | p99 |"
        " chat-shell's CPU, p50 |"
    )
    print("| --- | ---: | ---: | ---: |")
    for name, stats in results.items():
        cells = []
        for statistic in ("p50_us", "p99_us"):
            limit = limits.get((name, statistic))
            goal = (
                ""
                if limit is None
                else f" (goal ≤ {limit:,.0f}{' ✅' if stats[statistic] <= limit else ' ❌'})"
            )
            cells.append(f"{stats[statistic]:,.0f} µs{goal}")
        print(f"| {name} | {cells[0]} | {cells[1]} | {stats['cpu_p50_us']:,.0f} µs |")
    server_version = version[0] if version else "?"
    where = (
        f"PostgreSQL {server_version}, "
        + ("the server given" if given_url() else "a throw-away server with fsync on")
        + " on the same machine."
    )
    print(
        f"\nPostgreSQL {server_version}, Python {sys.version.split()[0]}; built in {build_s:.1f} s."
    )
    report = {
        "benchmark": "postgres history",
        "postgres": server_version,
        "python": sys.version.split()[0],
        "sessions": args.sessions,
        "messages": messages,
        "build_seconds": round(build_s, 1),
        "results": results,
        "rows": rows(results, messages, where),
    }
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
