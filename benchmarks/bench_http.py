"""HTTP mode: server CPU per streamed token and latency under concurrent streams.

Servers run as subprocesses on 127.0.0.1 free ports, against a scripted upstream in its own
process: `chat-shell serve` (as `python -m chat_shell_http`, SQLite history on, `openai/` model),
a bare FastAPI + httpx relay (the floor) and the same relay through litellm (the peer). The
server's CPU time is read from /proc/<pid>/stat around each load run. Runs interleave
(A B A B …) after a warm-up; medians are reported.

Each round runs the matrix 50 and 200 concurrent streams of 200 tokens × unpaced and paced at 50
tokens/s (the upstream sleeps 20 ms between tokens), chat-shell and the bare relay back to back,
and the litellm relay at 50 unpaced streams. Memory is the server's VmHWM (peak RSS, from
/proc/<pid>/status): idle right after start-up, then after a first load of 200 paced streams
(which also serves as the warm-up). Every load is bounded: a fixed number of streams, a 300 s
limit, 127.0.0.1 only.

    python benchmarks/bench_http.py [--runs 5] [--quick]

``--quick`` (for ``make bench-quick``): one round of 50 unpaced and 200 paced streams.
Prints a markdown table, then one JSON object with the rows (and the matrix) as the last line.
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


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process has had, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


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

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
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


def measure(
    server: Server, kind: str, concurrency: int, tokens: int, pace_ms: int
) -> dict[str, Any]:
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
        "tokens_per_s": streamed / wall,
        "server_cores": cpu / wall,  # 1.0: one core busy for the whole load
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
    digits: int = 2,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metric": metric,
        "ours": round(statistics.median(ours), digits),
        "ours_range": [round(min(ours), digits), round(max(ours), digits)],
        "unit": unit,
        "goal": goal,
    }
    if peer:
        out["peer"] = round(statistics.median(peer), digits)
        out["peer_range"] = [round(min(peer), digits), round(max(peer), digits)]
        out["ratio"] = round(
            ratio if ratio is not None else statistics.median(ours) / statistics.median(peer), 2
        )
    if passed is not None:
        out["pass"] = passed
    return out


def spread(values: list[float], digits: int = 0) -> str:
    """'median (min–max)', or the one value."""
    fmt = f"{{:.{digits}f}}"
    middle = fmt.format(statistics.median(values))
    if len(values) == 1 or min(values) == max(values):
        return middle
    return f"{middle} ({fmt.format(min(values))}–{fmt.format(max(values))})"


TOKENS = 200
SERVERS = {"ours": "chat-shell serve", "bare": "bare FastAPI+httpx", "litellm": "FastAPI+litellm"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round, smaller matrix")
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_port is not None:
        upstream_main(args.upstream_port)
        return
    runs = 1 if args.quick else args.runs
    # (concurrent streams, ms between tokens); 20 ms = 50 tokens/s
    matrix = [(50, 0), (200, 20)] if args.quick else [(50, 0), (200, 0), (50, 20), (200, 20)]
    upstream_process = subprocess.Popen(
        [sys.executable, __file__, "--upstream-port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert upstream_process.stdout is not None
    upstream = upstream_process.stdout.readline().strip()
    servers: dict[str, Server] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    memory: dict[str, dict[str, float]] = {}

    def run(key: str, name: str, concurrency: int, pace: int) -> dict[str, Any]:
        result = measure(servers[name], name, concurrency, TOKENS, pace)
        samples.setdefault(key, []).append(result)
        print(
            f"{key}: {result['completed']}/{concurrency} ok, "
            f"{result['cpu_us_per_token']:.1f} µs/token, wall {result['wall']:.2f} s",
            file=sys.stderr,
            flush=True,
        )
        return result

    def key(name: str, concurrency: int, pace: int) -> str:
        return f"{name} c{concurrency} {'paced' if pace else 'unpaced'}"

    try:
        servers = start_servers(upstream, with_litellm=True)
        time.sleep(1)
        for name, server in servers.items():
            memory[name] = {"idle": peak_rss_mib(server.process.pid)}
        # warm-up (imports, pools, first runs), and the memory peak at 200 paced streams
        for name in ("ours", "bare"):
            run(f"warmup {name}", name, 200, 20)
            memory[name]["200 streams"] = peak_rss_mib(servers[name].process.pid)
        run("warmup litellm", "litellm", 20, 0)
        for _ in range(runs):
            for concurrency, pace in matrix:
                for name in ("ours", "bare"):
                    run(key(name, concurrency, pace), name, concurrency, pace)
                if (concurrency, pace) == (50, 0):
                    run(key("litellm", 50, 0), "litellm", 50, 0)
        for name, server in servers.items():
            memory[name]["end"] = peak_rss_mib(server.process.pid)
    finally:
        for server in servers.values():
            server.stop()
        upstream_process.terminate()
        upstream_process.wait()

    def series(name: str, concurrency: int, pace: int, field: str) -> list[float]:
        return [s[field] for s in samples[key(name, concurrency, pace)]]

    def pooled(name: str, concurrency: int, pace: int, field: str, q: float) -> list[float]:
        """The q-quantile of each run, in ms."""
        return [p(s[field], q) * 1000 for s in samples[key(name, concurrency, pace)]]

    rows = []
    for concurrency, pace in matrix:
        if pace:
            continue
        ours = series("ours", concurrency, 0, "cpu_us_per_token")
        bare = series("bare", concurrency, 0, "cpu_us_per_token")
        rows.append(
            row(
                f"server CPU per token, {concurrency} streams × {TOKENS} unpaced, "
                "vs bare FastAPI+httpx relay",
                ours,
                bare,
                "µs CPU/token",
                "≤ 2× bare relay",
                statistics.median(ours) / statistics.median(bare) <= 2.0,
                digits=1,
            )
        )
    ours = series("ours", 50, 0, "cpu_us_per_token")
    peer = series("litellm", 50, 0, "cpu_us_per_token")
    ratio = statistics.median(peer) / statistics.median(ours)
    rows.append(
        row(
            "server CPU per token, 50 streams unpaced, vs FastAPI+litellm relay"
            " (ratio: litellm ÷ ours)",
            ours,
            peer,
            "µs CPU/token",
            "litellm relay ≥ 5× ours",
            ratio >= 5.0,
            ratio=ratio,
            digits=1,
        )
    )
    for concurrency, pace in matrix:
        if pace:
            continue
        rows.append(
            row(
                f"server throughput, {concurrency} streams unpaced, vs bare FastAPI+httpx relay",
                series("ours", concurrency, 0, "tokens_per_s"),
                series("bare", concurrency, 0, "tokens_per_s"),
                "tokens/s",
                "(reference)",
                None,
                digits=0,
            )
        )
    rows.append(
        row(
            "server throughput, 50 streams unpaced, vs FastAPI+litellm relay",
            series("ours", 50, 0, "tokens_per_s"),
            series("litellm", 50, 0, "tokens_per_s"),
            "tokens/s",
            "(reference)",
            None,
            digits=0,
        )
    )
    completed = series("ours", 200, 20, "completed")
    rows.append(
        row(
            f"200 streams × {TOKENS} tokens paced at 50 tok/s: completed, vs bare relay",
            completed,
            series("bare", 200, 20, "completed"),
            "streams",
            "all 200",
            min(completed) == 200,
            digits=0,
        )
    )
    request_p99 = [v / 1000 for v in pooled("ours", 200, 20, "request", 0.99)]
    rows.append(
        row(
            "200 paced streams: p99 request time (ideal 4.0 s), vs bare relay",
            request_p99,
            [v / 1000 for v in pooled("bare", 200, 20, "request", 0.99)],
            "s",
            "≤ 5.0 s",
            statistics.median(request_p99) <= 5.0,
        )
    )
    ttfe_p99 = pooled("ours", 200, 20, "ttfe", 0.99)
    rows.append(
        row(
            "200 paced streams: p99 time to first event, vs bare relay",
            ttfe_p99,
            pooled("bare", 200, 20, "ttfe", 0.99),
            "ms",
            "≤ 500 ms",
            statistics.median(ttfe_p99) <= 500,
            digits=0,
        )
    )
    for name, label in (("idle", "idle"), ("200 streams", "at 200 paced streams")):
        rows.append(
            row(
                f"memory: peak RSS of `chat-shell serve` {label}, vs bare FastAPI+httpx relay",
                [memory["ours"][name]],
                [memory["bare"][name]],
                "MiB",
                "(reference)",
                None,
                digits=1,
            )
        )
    rows.append(
        row(
            "memory: peak RSS of the FastAPI+litellm relay idle (vs chat-shell serve idle)",
            [memory["litellm"]["idle"]],
            [memory["ours"]["idle"]],
            "MiB",
            "(reference)",
            None,
            digits=1,
        )
    )
    served = sum(len(v) * int(k.split()[1][1:]) for k, v in samples.items() if k.startswith("ours"))
    rows[-1]["note"] = (
        f"`chat-shell serve` peak RSS after the whole HTTP benchmark ({served} runs, all retained"
        f" for resume): {memory['ours']['end']:.0f} MiB; the bare relay keeps nothing:"
        f" {memory['bare']['end']:.0f} MiB"
    )

    columns = [
        "streams",
        "pace",
        "server",
        "completed",
        "errors",
        "TTFE p50 ms",
        "TTFE p99 ms",
        "request p50 s",
        "request p99 s",
        "tokens/s",
        "CPU µs/token",
        "server CPU, cores",
    ]
    table = []
    for concurrency, pace in matrix:
        for name in ("ours", "bare", "litellm"):
            if key(name, concurrency, pace) not in samples:
                continue
            table.append(
                [
                    str(concurrency),
                    "50 tok/s" if pace else "unpaced",
                    SERVERS[name],
                    f"{min(series(name, concurrency, pace, 'completed')):.0f}/{concurrency}",
                    f"{sum(series(name, concurrency, pace, 'errors')):.0f}",
                    spread(pooled(name, concurrency, pace, "ttfe", 0.5)),
                    spread(pooled(name, concurrency, pace, "ttfe", 0.99)),
                    spread([v / 1000 for v in pooled(name, concurrency, pace, "request", 0.5)], 2),
                    spread([v / 1000 for v in pooled(name, concurrency, pace, "request", 0.99)], 2),
                    spread(series(name, concurrency, pace, "tokens_per_s")),
                    spread(series(name, concurrency, pace, "cpu_us_per_token"), 1),
                    spread(series(name, concurrency, pace, "server_cores"), 2),
                ]
            )
    matrix_table = {
        "title": (
            f"Concurrency matrix ({TOKENS} tokens per stream; median of {runs} run(s), min–max;"
            " completed: the worst run; errors: all runs)"
        ),
        "columns": columns,
        "rows": table,
    }

    print("| metric | chat-shell | peer / floor | ratio | unit | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mark = {True: "✅", False: "❌", None: "—"}.get(r.get("pass"), "—")
        print(
            f"| {r['metric']} | {r['ours']} {r['ours_range']} | {r.get('peer', '—')} "
            f"{r.get('peer_range', '')} | {r.get('ratio', '—')} | {r['unit']} | {r['goal']} "
            f"| {mark} |"
        )
    print()
    print("| " + " | ".join(columns) + " |")
    for line in table:
        print("| " + " | ".join(line) + " |")
    print(
        json.dumps(
            {
                "benchmark": "http",
                "runs": runs,
                "memory_mib": memory,
                "per_run": {
                    k: [
                        {f: round(r[f], 2) for f in ("cpu_us_per_token", "tokens_per_s", "wall")}
                        for r in v
                    ]
                    for k, v in samples.items()
                },
                "rows": rows,
                "tables": [matrix_table],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
