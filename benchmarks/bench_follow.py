"""Cross-instance follow lag on PostgreSQL: how much later a follower on instance B gets each
event of a run that instance A runs, than a follower on A itself (served from A's memory).

Two `chat-shell serve` processes on one PostgreSQL database (``--storage-url``, or
``CHAT_SHELL_BENCH_POSTGRES``), the scripted upstream in this process; ``--runs`` runs (default
20) of 100 tokens paced at 50 tokens/s, each started on A and followed at once on A and on B by
one asyncio client; the lag of an event is its arrival on B minus its arrival on A (one clock).
Goal: p99 ≤ 100 ms. Prints a markdown table, then one JSON line.

    python benchmarks/bench_follow.py --storage-url postgresql://… [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
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
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
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


async def one_run(client: httpx.AsyncClient, a: str, b: str, n: int) -> list[float]:
    async with client.stream(
        "POST",
        f"{a}/v1/response",
        json={"messages": [{"role": "user", "content": "go"}], "session_id": f"follow-{n}"},
    ) as response:
        run_id = response.headers["X-Subtask-Id"]
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break
    on_a, on_b = await asyncio.gather(arrivals(client, a, run_id), arrivals(client, b, run_id))
    return [on_b[seq] - on_a[seq] for seq in on_a if seq in on_b]


async def measure(a: str, b: str, runs: int) -> list[float]:
    lags: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        for n in range(runs):
            lags += await one_run(client, a, b, n)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--storage-url", default=os.environ.get("CHAT_SHELL_BENCH_POSTGRES"))
    args = parser.parse_args()
    if not args.storage_url:
        raise SystemExit("bench_follow: give --storage-url (or CHAT_SHELL_BENCH_POSTGRES)")

    def responder(request: dict[str, Any]) -> Reply:
        return Reply.tokens(TOKENS, delay=0.02)

    with ScriptedModelServer(responder=responder) as upstream:
        a, url_a = start(upstream.url, args.storage_url)
        b, url_b = start(upstream.url, args.storage_url)
        try:
            asyncio.run(measure(url_a, url_b, 2))  # warm-up
            lags = asyncio.run(measure(url_a, url_b, args.runs))
        finally:
            for process in (a, b):
                process.terminate()
                process.wait(30)
    ms = sorted(lag * 1000 for lag in lags)
    p99 = round(p(ms, 0.99), 1)
    result: dict[str, Any] = {
        "metric": "cross-instance follow lag (B behind A), p99",
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": p99,
        "max_ms": round(ms[-1], 1),
        "events": len(ms),
        "goal": "p99 ≤ 100 ms",
    }
    result["pass"] = p99 <= 100
    print("| metric | p50 | p99 | max | events | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {result['metric']} | {result['p50_ms']} ms | {result['p99_ms']} ms |"
        f" {result['max_ms']} ms | {result['events']} | {result['goal']} |"
        f" {'✅' if result['pass'] else '❌'} |"
    )
    print(json.dumps({"benchmark": "follow lag", "rows": [result]}))


if __name__ == "__main__":
    main()
