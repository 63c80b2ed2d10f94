"""Run stores: server CPU per token and p99 time to first event, per run store.

One `chat-shell serve` per run store (memory history, `run_store = NAME`), against the scripted
upstream in its own process; 200 streams × 200 tokens paced at 50 tokens/s (the upstream sleeps
20 ms between tokens) — the load issue 14 sets its goals on. Stores interleave (A B A B …) after
a warm-up; medians of the runs. The first store is the reference the others are compared with
(server CPU per token ≤ 1.3× memory for SQLite, ≤ 1.5× for PostgreSQL).

    python benchmarks/bench_runs.py [--runs 3] [--stores memory,sqlite] [--quick]

The PostgreSQL run store works in a database of its own on the server given by ``--storage-url``
(or ``CHAT_SHELL_BENCH_POSTGRES``), else on a throw-away server started for the run
(``pg_server.py``: ``tests/postgres/server.sh start DIR --durable``). A store that is not
installed, or a PostgreSQL that cannot be had, is a row that fails with the reason, never a
silent omission. Database writes per 10 tokens: the server counts its run store's write
transactions (SQLite), or every transaction and single statement its run store sends
(PostgreSQL: the reads too, so an upper bound).
``--quick``: one round of 50 paced streams × 50 tokens, after a warm-up (for ``make bench-quick``).
Prints a markdown table, then one JSON object with the rows as the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_server
from bench_http import Server, free_port, measure, p, row

# The server, with its run store's database work counted and the count written to a file every
# 0.2 s: what "database writes per 10 tokens" is measured from. SQLite: each write transaction
# (BEGIN IMMEDIATE … COMMIT: claims, flushes, lease renewals, ends); PostgreSQL: each
# transaction or single statement the store sends (writes and reads: an upper bound). Nothing
# else of the server changes.
COUNTING_SERVER = """
import os, sys, threading, time
count = [0]
if os.environ["BENCH_STORE"] == "sqlite":
    import chat_shell_sqlite._run_store as runs
    original = runs.SQLiteRunStore._write
    async def counted(self, fn):
        count[0] += 1
        return await original(self, fn)
    runs.SQLiteRunStore._write = counted
else:
    import chat_shell_postgres._runs as runs
    opened = runs.PostgresRunStore._transaction
    def counted(self, **options):
        count[0] += 1
        return opened(self, **options)
    runs.PostgresRunStore._transaction = counted
def report():
    while True:
        with open(os.environ["BENCH_WRITES_FILE"] + ".tmp", "w") as out:
            out.write(str(count[0]))
        os.replace(os.environ["BENCH_WRITES_FILE"] + ".tmp", os.environ["BENCH_WRITES_FILE"])
        time.sleep(0.2)
threading.Thread(target=report, daemon=True).start()
from chat_shell_http.__main__ import main
main(sys.argv[1:])
"""

COUNTED = ("sqlite", "postgres")
WRITES_FILES: dict[int, Path] = {}  # port of a counting server -> its count file


def writes(server: Server) -> int | None:
    """The server's count of its run store's database work so far (``None`` for the memory
    store)."""
    path = WRITES_FILES.get(server.port)
    if path is None:
        return None
    time.sleep(0.5)  # the count is written every 0.2 s
    return int(path.read_text() or 0)


def installed(name: str) -> bool:
    from chat_shell import available_run_stores

    return name in available_run_stores()


def start_server(upstream: str, store: str, storage_url: str | None) -> Server:
    home = Path(tempfile.mkdtemp(prefix=f"bench-runs-{store}-"))
    lines = [
        'model = "openai/bench"',
        "retries = 0",
        'storage = "memory"',
        f'run_store = "{store}"',
    ]
    if storage_url and store == "postgres":
        lines.append(f'storage_url = "{storage_url}"')
    if store == "sqlite":
        lines.append(f'storage_path = "{home / "runs.db"}"')
    lines += [
        '[models."openai/bench"]',
        f'api_base = "{upstream}"',
        'api_key = "sk-bench"',
        "[server]",
        "rate_limit_per_minute = 0",
        "access_log = false",
        "max_active_runs = 5000",
    ]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "CHAT_SHELL_HOME": str(home)}
    port = free_port()
    command = [sys.executable, "-m", "chat_shell_http", "--port", str(port)]
    if store in COUNTED:
        env["BENCH_WRITES_FILE"] = str(home / "writes")
        env["BENCH_STORE"] = store
        (home / "writes").write_text("0")
        command = [sys.executable, "-c", COUNTING_SERVER, "--port", str(port)]
        WRITES_FILES[port] = home / "writes"
    return Server(f"chat-shell serve ({store} runs)", command, port, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="memory,sqlite,postgres")
    parser.add_argument("--storage-url", default=os.environ.get("CHAT_SHELL_BENCH_POSTGRES"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    streams, tokens = (50, 50) if args.quick else (200, 200)
    stores: list[str] = []
    missing: dict[str, str] = {}  # store -> why it was not measured
    for name in args.stores.split(","):
        if not installed(name):
            missing[name] = f"the {name!r} run store is not installed"
        else:
            stores.append(name)
    stack = contextlib.ExitStack()
    storage_url = None
    if "postgres" in stores:
        try:
            storage_url = stack.enter_context(
                pg_server.database(stack.enter_context(pg_server.server(args.storage_url)))
            )
        except pg_server.PostgresUnavailable as exc:
            stores.remove("postgres")
            missing["postgres"] = str(exc)
    for name, reason in missing.items():
        print(f"run store {name}: not measured: {reason}", file=sys.stderr)
    upstream_process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bench_http.py")), "--upstream-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert upstream_process.stdout is not None
    upstream = upstream_process.stdout.readline().strip()
    servers: dict[str, Server] = {}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
    try:
        for name in stores:  # all at once: start-up is slow on a busy machine
            servers[name] = start_server(upstream, name, storage_url)
        for server in servers.values():
            server.wait_ready("/v1/health", timeout=180)
        time.sleep(1)
        for name in stores:  # warm-up: imports, pools, first runs
            measure(servers[name], "ours", streams, tokens, 20)
        for _ in range(runs):
            for name in stores:
                written = writes(servers[name])
                result = measure(servers[name], "ours", streams, tokens, 20)
                if written is not None:
                    written = (writes(servers[name]) or 0) - written
                    # tokens of the completed streams (an unfinished one's count as none: the
                    # figure can only be too high)
                    streamed = result["completed"] * tokens
                    result["writes_per_10_tokens"] = 10 * written / max(streamed, 1)
                samples[name].append(result)
                print(
                    f"{name}: {result['completed']}/{streams} ok, "
                    f"{result['cpu_us_per_token']:.1f} µs/token, "
                    f"p99 first event {p(result['ttfe'], 0.99) * 1000:.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
        upstream_process.terminate()
        upstream_process.wait()
        stack.close()

    rows = []
    reference = stores[0] if stores else None
    goals = {"sqlite": 1.3, "postgres": 1.5}
    for name in stores:
        cpu = [s["cpu_us_per_token"] for s in samples[name]]
        base = [s["cpu_us_per_token"] for s in samples[reference]] if reference else None
        limit = goals.get(name)
        ratio = statistics.median(cpu) / statistics.median(base) if base else None
        rows.append(
            row(
                f"server CPU per token, {streams} paced streams, {name} run store"
                + (f" vs {reference}" if name != reference else ""),
                cpu,
                base if name != reference else None,
                "µs CPU/token",
                f"≤ {limit}× {reference}" if limit else "(reference)",
                (ratio is not None and ratio <= limit) if limit else None,
                digits=1,
            )
        )
        ttfe = [p(s["ttfe"], 0.99) * 1000 for s in samples[name]]
        rows.append(
            row(
                f"p99 time to first event, {streams} paced streams, {name} run store",
                ttfe,
                None,
                "ms",
                "≤ 500 ms",
                statistics.median(ttfe) <= 500,
                digits=0,
            )
        )
        if name in ("sqlite", "postgres"):
            per_10 = [s["writes_per_10_tokens"] for s in samples[name]]
            what = "write transactions" if name == "sqlite" else "transactions and statements"
            rows.append(
                row(
                    f"database {what} per 10 tokens, {streams} paced streams, {name} run store",
                    per_10,
                    None,
                    "writes/10 tokens",
                    "≤ 1",
                    statistics.median(per_10) <= 1,
                    digits=3,
                )
            )
            if name == "postgres":
                rows[-1]["note"] = (
                    "the PostgreSQL store's database writes are every transaction and single"
                    " statement it sent, counted in the server (reads included): an upper bound"
                )
        completed = [s["completed"] for s in samples[name]]
        rows.append(
            row(
                f"{streams} paced streams completed, {name} run store",
                completed,
                None,
                "streams",
                f"all {streams}",
                min(completed) == streams,
                digits=0,
            )
        )
    for name, reason in missing.items():
        limit = goals.get(name)
        goal = f"≤ {limit}× {reference}" if limit else "measured"
        rows.append(pg_server.unavailable(f"{name} run store", goal, reason))
    for item in rows:
        print(f"| {item['metric']} | {item.get('ours', '—')} {item['unit']} | {item['goal']} |")
    print(json.dumps({"benchmark": "run stores", "rows": rows}))


if __name__ == "__main__":
    main()
