"""HTTP mode: server CPU per streamed token and latency under concurrent streams.

Servers run as subprocesses on 127.0.0.1 free ports, against a scripted upstream in its own
process: `chat-shell serve` (as `python -m chat_shell_http`, SQLite history on, `openai/` model),
a bare FastAPI + httpx relay (the floor) and the same relay through litellm (the peer). The
server's CPU time is read from /proc/<pid>/stat around each load run. Runs interleave
(A B A B …) after a warm-up; medians are reported.

    python benchmarks/bench_http.py [--runs 5] [--quick]

Prints a markdown table, then one JSON object with the rows as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def upstream_main(port: int) -> None:
    """The scripted upstream, with ``paced N MS`` for N tokens MS ms apart."""
    import threading

    from chat_shell.testing import Reply, ScriptedModelServer, default_responder

    def responder(request: dict[str, Any]) -> Reply:
        content = str((request.get("messages") or [{}])[-1].get("content") or "")
        if match := re.fullmatch(r"paced (\d+) (\d+)", content.strip()):
            return Reply.tokens(int(match.group(1)), delay=int(match.group(2)) / 1000)
        return default_responder(request)

    with ScriptedModelServer(responder=responder, port=port) as server:
        print(server.url, flush=True)
        threading.Event().wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Server:
    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str]) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait_ready(self, path: str) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}")
            try:
                httpx.get(self.url + path, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_servers(upstream: str, with_litellm: bool) -> dict[str, Server]:
    home = Path(tempfile.mkdtemp(prefix="bench-http-"))
    (home / "config.toml").write_text(
        'model = "openai/bench"\nretries = 0\n'
        f'[models."openai/bench"]\napi_base = "{upstream}"\napi_key = "sk-bench"\n'
        "[server]\nrate_limit_per_minute = 0\naccess_log = false\n"
        "max_active_runs = 5000\n"
    )
    env = {**os.environ, "CHAT_SHELL_HOME": str(home)}
    servers = {}
    port = free_port()
    servers["ours"] = Server(
        "chat-shell serve",
        [sys.executable, "-m", "chat_shell_http", "--port", str(port)],
        port,
        env,
    )
    relays = {"bare": "relay_bare.py"}
    if with_litellm:
        relays["litellm"] = "relay_litellm.py"
    for name, script in relays.items():
        port = free_port()
        command = [sys.executable, str(HERE / script), "--port", str(port), "--upstream", upstream]
        servers[name] = Server(name, command, port, env)
    servers["ours"].wait_ready("/v1/health")
    for name in relays:
        servers[name].wait_ready("/")
    return servers


async def one_stream(client: Any, server: str, content: str) -> tuple[float, float, int, bool]:
    """(time to first event, request time, content events, completed) of one stream."""
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    complete = False
    if server == "ours":
        request = client.stream(
            "POST", "/v1/response", json={"messages": [{"role": "user", "content": content}]}
        )
    else:
        request = client.stream("POST", "/relay", json={"content": content})
    async with request as response:
        if response.status_code != 200:
            return 0.0, time.perf_counter() - start, 0, False
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                if first is None:
                    first = time.perf_counter() - start
                if line == "event: content":
                    tokens += 1
                elif line == "event: complete":
                    complete = True
    return first or 0.0, time.perf_counter() - start, tokens, complete


async def load(url: str, server: str, concurrency: int, content: str) -> list[Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def guarded() -> Any:
            try:
                return await one_stream(client, server, content)
            except Exception as exc:  # counted as an error
                return exc

        return await asyncio.gather(*(guarded() for _ in range(concurrency)))


def measure(server: Server, kind: str, concurrency: int, tokens: int, pace_ms: int) -> dict:
    content = f"paced {tokens} {pace_ms}"
    before = cpu_seconds(server.process.pid)
    wall = time.perf_counter()
    results = asyncio.run(asyncio.wait_for(load(server.url, kind, concurrency, content), 300))
    wall = time.perf_counter() - wall
    time.sleep(0.3)  # let the server finish storing
    cpu = cpu_seconds(server.process.pid) - before
    ok = [r for r in results if not isinstance(r, BaseException) and r[3] and r[2] == tokens]
    streamed = sum(r[2] for r in results if not isinstance(r, BaseException))
    return {
        "completed": len(ok),
        "errors": concurrency - len(ok),
        "cpu_us_per_token": cpu / max(streamed, 1) * 1e6,
        "ttfe": [r[0] for r in ok],
        "request": [r[1] for r in ok],
        "wall": wall,
    }


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(
    metric: str,
    ours: list[float],
    peer: list[float] | None,
    unit: str,
    goal: str,
    passed: bool | None,
    ratio: float | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metric": metric,
        "ours": round(statistics.median(ours), 2),
        "ours_range": [round(min(ours), 2), round(max(ours), 2)],
        "unit": unit,
        "goal": goal,
    }
    if peer:
        out["peer"] = round(statistics.median(peer), 2)
        out["peer_range"] = [round(min(peer), 2), round(max(peer), 2)]
        out["ratio"] = round(ratio if ratio is not None else out["ours"] / out["peer"], 2)
    if passed is not None:
        out["pass"] = passed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 run, smaller loads")
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_port is not None:
        upstream_main(args.upstream_port)
        return
    runs = 1 if args.quick else args.runs
    upstream_process = subprocess.Popen(
        [sys.executable, __file__, "--upstream-port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert upstream_process.stdout is not None
    upstream = upstream_process.stdout.readline().strip()
    servers = start_servers(upstream, with_litellm=True)
    samples: dict[str, list[dict]] = {}

    def run(key: str, name: str, concurrency: int, tokens: int, pace: int) -> None:
        result = measure(servers[name], name, concurrency, tokens, pace)
        samples.setdefault(key, []).append(result)
        print(
            f"{key}: {result['completed']}/{concurrency} ok, "
            f"{result['cpu_us_per_token']:.1f} µs/token, wall {result['wall']:.2f} s",
            file=sys.stderr,
            flush=True,
        )

    tokens = 200
    unpaced = [50] if args.quick else [50, 200]
    try:
        for name in ("ours", "bare", "litellm"):  # warm-up: imports, pools, first runs
            run(f"warmup {name}", name, 20, tokens, 0)
        for _ in range(runs):
            for concurrency in unpaced:
                for name in ("ours", "bare"):
                    run(f"{name} c{concurrency} unpaced", name, concurrency, tokens, 0)
            run("litellm c50 unpaced", "litellm", 50, tokens, 0)
            run("ours c50 unpaced/litellm", "ours", 50, tokens, 0)
            for concurrency in (50, 200):
                for name in ("ours", "bare"):
                    run(f"{name} c{concurrency} paced", name, concurrency, tokens, 20)
    finally:
        for server in servers.values():
            server.stop()
        upstream_process.terminate()
        upstream_process.wait()

    def series(key: str, field: str) -> list[float]:
        return [s[field] for s in samples[key]]

    def pooled(key: str, field: str, q: float) -> list[float]:
        return [p(s[field], q) * 1000 for s in samples[key]]

    rows = []
    for concurrency in unpaced:
        ours = series(f"ours c{concurrency} unpaced", "cpu_us_per_token")
        bare = series(f"bare c{concurrency} unpaced", "cpu_us_per_token")
        ratio = statistics.median(ours) / statistics.median(bare)
        rows.append(
            row(
                f"server CPU per token, {concurrency} streams × {tokens}, vs bare FastAPI+httpx",
                ours,
                bare,
                "µs CPU/token",
                "≤ 2× bare relay",
                ratio <= 2.0,
            )
        )
    ours = series("ours c50 unpaced/litellm", "cpu_us_per_token")
    peer = series("litellm c50 unpaced", "cpu_us_per_token")
    ratio = statistics.median(peer) / statistics.median(ours)
    rows.append(
        row(
            "server CPU per token, 50 streams, litellm relay ÷ chat-shell",
            ours,
            peer,
            "µs CPU/token",
            "litellm relay ≥ 5× ours",
            ratio >= 5.0,
            ratio=ratio,
        )
    )
    for concurrency in (50, 200):
        key = f"ours c{concurrency} paced"
        completed = series(key, "completed")
        rows.append(
            row(
                f"{concurrency} streams × {tokens} tokens at 50 tok/s: completed",
                completed,
                series(f"bare c{concurrency} paced", "completed"),
                "streams",
                f"all {concurrency}",
                min(completed) == concurrency,
            )
        )
        request_p99 = pooled(key, "request", 0.99)
        rows.append(
            row(
                f"{concurrency} paced streams: p99 request time (ideal 4.0 s)",
                [v / 1000 for v in request_p99],
                [v / 1000 for v in pooled(f"bare c{concurrency} paced", "request", 0.99)],
                "s",
                "≤ 5.0 s",
                statistics.median(request_p99) / 1000 <= 5.0,
            )
        )
        ttfe_p99 = pooled(key, "ttfe", 0.99)
        rows.append(
            row(
                f"{concurrency} paced streams: p99 time to first event",
                ttfe_p99,
                pooled(f"bare c{concurrency} paced", "ttfe", 0.99),
                "ms",
                "≤ 500 ms",
                statistics.median(ttfe_p99) <= 500,
            )
        )
        rows.append(
            row(
                f"{concurrency} paced streams: p50 time to first event",
                pooled(key, "ttfe", 0.5),
                pooled(f"bare c{concurrency} paced", "ttfe", 0.5),
                "ms",
                "(reference)",
                None,
            )
        )

    print("| metric | chat-shell | peer / floor | ratio | unit | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mark = {True: "✅", False: "❌"}.get(r.get("pass"), "—")  # type: ignore[call-overload]
        print(
            f"| {r['metric']} | {r['ours']} {r['ours_range']} | {r.get('peer', '—')} "
            f"{r.get('peer_range', '')} | {r.get('ratio', '—')} | {r['unit']} | {r['goal']} "
            f"| {mark} |"
        )
    print(json.dumps({"benchmark": "http", "runs": runs, "rows": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
