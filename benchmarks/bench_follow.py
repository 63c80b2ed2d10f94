"""Cross-instance follow lag on PostgreSQL: how much later a follower on instance B gets each
event of a run that instance A runs, than a follower on A itself (served from A's memory).

Two `chat-shell serve` processes on one PostgreSQL database (a new database on the server given
by ``--storage-url`` or ``CHAT_SHELL_BENCH_POSTGRES``, else on a throw-away server started for
the run: ``pg_server.py``), the scripted upstream in this process; ``--runs`` runs (default 20)
of 100 tokens paced at 50 tokens/s after 2 for warm-up, each started on A and followed at once
on A and on B by one asyncio client; the lag of an event is its arrival on B minus its arrival on
A (one clock). Goal: p99 ≤ 100 ms. Without PostgreSQL the row fails with the reason.
``--quick`` (for ``make bench-quick``): 3 runs after 1. Prints a markdown table, then one JSON
line.

    python benchmarks/bench_follow.py [--storage-url postgresql://…] [--runs 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
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

import httpx
from chat_shell.testing import Reply, ScriptedModelServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_server
from bench_http import free_port, p

TOKENS = 100
SCRIPT = Path(sys.executable).with_name("chat-shell")


def start(upstream: str, url: str) -> tuple[subprocess.Popen[bytes], str]:
    home = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    (home / "config.toml").write_text(
        f'model = "openai/bench"\nretries = 0\nstorage = "postgres"\nstorage_url = "{url}"\n'
        f'[models."openai/bench"]\napi_base = "{upstream}"\napi_key = "sk-bench"\n'
        "[server]\nrate_limit_per_minute = 0\naccess_log = false\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port)],
        env={**os.environ, "CHAT_SHELL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen[bytes], base: str) -> None:
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"chat-shell serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("chat-shell serve did not start")


async def arrivals(client: httpx.AsyncClient, url: str, run_id: str) -> dict[int, float]:
    seen: dict[int, float] = {}
    async with client.stream(
        "GET",
        f"{url}/v1/response/{run_id}",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "0"},
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                seen[int(line[3:].strip())] = time.perf_counter()
    return seen


async def one_run(client: httpx.AsyncClient, a: str, b: str, session: str) -> list[float]:
    async with client.stream(
        "POST",
        f"{a}/v1/response",
        json={"messages": [{"role": "user", "content": "go"}], "session_id": session},
    ) as response:
        run_id = response.headers["X-Subtask-Id"]
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break
    on_a, on_b = await asyncio.gather(arrivals(client, a, run_id), arrivals(client, b, run_id))
    return [on_b[seq] - on_a[seq] for seq in on_a if seq in on_b]


async def measure(a: str, b: str, runs: int, label: str) -> list[float]:
    lags: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        for n in range(runs):  # a session of its own for each run
            lags += await one_run(client, a, b, f"follow-{label}-{n}")
    return lags


METRIC = "cross-instance follow lag (a follower on B behind one on A), p99"
GOAL = "≤ 100 ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--storage-url", default=os.environ.get("CHAT_SHELL_BENCH_POSTGRES"))
    parser.add_argument("--quick", action="store_true", help="3 runs after 1 for warm-up")
    args = parser.parse_args()
    runs, warmup = (3, 1) if args.quick else (args.runs, 2)

    def responder(request: dict[str, Any]) -> Reply:
        return Reply.tokens(TOKENS, delay=0.02)

    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(pg_server.server(args.storage_url))
            url = stack.enter_context(pg_server.database(base))
            version = pg_server.server_version(url)
        except pg_server.PostgresUnavailable as exc:
            print(exc, file=sys.stderr)
            row = pg_server.unavailable("cross-instance follow lag", GOAL, str(exc))
            print(json.dumps({"benchmark": "follow lag", "rows": [row]}, ensure_ascii=False))
            return
        upstream = stack.enter_context(ScriptedModelServer(responder=responder))
        a, url_a = start(upstream.url, url)  # both start at once: start-up is slow when busy
        b, url_b = start(upstream.url, url)
        try:
            wait_ready(a, url_a)
            wait_ready(b, url_b)
            asyncio.run(measure(url_a, url_b, warmup, "warmup"))
            lags = asyncio.run(measure(url_a, url_b, runs, "measured"))
        finally:
            for process in (a, b):
                process.terminate()
            for process in (a, b):
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    ms = sorted(lag * 1000 for lag in lags)
    p99 = round(p(ms, 0.99), 1)
    result: dict[str, Any] = {
        "metric": METRIC,
        "ours": p99,
        "unit": "ms",
        "goal": GOAL,
        "pass": p99 <= 100,
        "p50_ms": round(statistics.median(ms), 1),
        "max_ms": round(ms[-1], 1),
        "events": len(ms),
    }
    given = "the server given" if pg_server.given_url() or args.storage_url else "a throw-away"
    result["note"] = (
        f"follow lag: p50 {result['p50_ms']} ms, p99 {p99} ms, max {result['max_ms']} ms over"
        f" {len(ms)} events of {runs} runs × {TOKENS} tokens paced at 50 tokens/s; two `chat-shell"
        f' serve` processes (`storage = "postgres"`) on one database of PostgreSQL {version}'
        f" ({given} server with fsync on, the same machine); each run started on A and followed"
        " at once on A and on B by one client; the lag of an event is its arrival on B minus"
        " on A (one clock)"
    )
    print("| metric | p50 | p99 | max | events | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {METRIC} | {result['p50_ms']} ms | {p99} ms | {result['max_ms']} ms |"
        f" {len(ms)} | {GOAL} | {'✅' if result['pass'] else '❌'} |"
    )
    print(json.dumps({"benchmark": "follow lag", "rows": [result]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
