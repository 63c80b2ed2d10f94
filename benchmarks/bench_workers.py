"""`chat-shell serve --workers 2` against one worker: unpaced throughput on PostgreSQL.

Two servers, started at once and kept for the whole run: `chat-shell serve --workers 1` (one
process) and `chat-shell serve --workers 2` (uvicorn's supervisor and two worker processes
accepting on one port), each with `storage = "postgres"` (history and runs) in a database of its
own on one PostgreSQL server — the one given by ``--storage-url`` or ``CHAT_SHELL_BENCH_POSTGRES``,
else a throw-away server started for the run (``pg_server.py``: fsync on). Both call the same
scripted upstream, in its own process. Each load is ``--streams`` concurrent unpaced streams of
``--tokens`` tokens from the load generator of ``bench_http.py`` (one asyncio httpx client in
this process, a new connection per stream, so the kernel spreads them over the workers); after a
warm-up load on each, the servers alternate (1, 2, 1, 2 …) for ``--runs`` rounds; medians.

Reported: tokens/s of each and their ratio (the median of the rounds' ratios; goal ≥ 1.6×);
the CPU of every process of each server per token (``utime+stime`` of the serve process and
its children, the workers); and the cores that the server, the load generator
(``time.process_time`` of this process), the scripted upstream and — when the server is a
throw-away one — PostgreSQL used during the loads, with the whole machine's busy cores, because
on a 2-core machine all of them share the cores the workers run on.

    python benchmarks/bench_workers.py [--runs 3] [--streams 200] [--tokens 200] [--quick]

``--quick`` (for ``make bench-quick``): one round of 50 streams. Without PostgreSQL the goal's
row fails with the reason. Prints a markdown table, then one JSON object with the rows as the
last line.
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

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_server
from bench_http import Server, cpu_seconds, free_port, measure, row

SCRIPT = Path(sys.executable).with_name("chat-shell")
GOAL = 1.6
WORKERS = (1, 2)


def process_tree_cpu(pid: int) -> dict[int, float]:
    """utime+stime (s) of ``pid`` and of each of its descendants alive now."""
    found: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            found[process.pid] = times.user + times.system
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy so far (every core, all work)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq")  # guest time is within user and nice
    return float(sum(getattr(times, name, 0.0) for name in busy))


def start(upstream: str, url: str, workers: int) -> Server:
    home = Path(tempfile.mkdtemp(prefix=f"bench-workers-{workers}-"))
    (home / "config.toml").write_text(
        f'model = "openai/bench"\nretries = 0\nstorage = "postgres"\nstorage_url = "{url}"\n'
        f'[models."openai/bench"]\napi_base = "{upstream}"\napi_key = "sk-bench"\n'
        "[server]\nrate_limit_per_minute = 0\naccess_log = false\nmax_active_runs = 5000\n"
    )
    port = free_port()
    command = [str(SCRIPT), "serve", "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "CHAT_SHELL_HOME": str(home)}
    return Server(f"chat-shell serve --workers {workers}", command, port, env)


def wait_ready(server: Server, workers: int) -> None:
    """Until the server answers and has its worker processes (a busy machine makes start-up
    slow: up to 3 minutes)."""
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.process.returncode}")
        with contextlib.suppress(httpx.HTTPError, psutil.NoSuchProcess):
            children = psutil.Process(server.process.pid).children()
            if workers == 1 or len(children) >= workers:
                httpx.get(server.url + "/v1/health", timeout=1).raise_for_status()
                return
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not start")


def stop(server: Server) -> None:
    """SIGTERM to the serve process (it stops its workers); any process left after 30 s is
    killed."""
    try:
        children = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def one_load(
    server: Server, upstream_pid: int, postgres_pid: int | None, streams: int, tokens: int
) -> dict[str, Any]:
    """One load on ``server``, with the CPU of everything that took part in it."""
    served0 = process_tree_cpu(server.process.pid)
    postgres0 = sum(process_tree_cpu(postgres_pid).values()) if postgres_pid else 0.0
    upstream0 = cpu_seconds(upstream_pid)
    machine0 = machine_busy()
    load0 = time.process_time()
    result = measure(server, "ours", streams, tokens, 0)  # reads the CPU 0.3 s after the load
    load_cpu = time.process_time() - load0
    served = process_tree_cpu(server.process.pid)
    wall = result["wall"]
    per_process = {pid: cpu - served0.get(pid, 0.0) for pid, cpu in served.items()}
    server_cpu = sum(per_process.values())
    streamed = result["tokens_per_s"] * wall
    busiest = sorted(per_process.values(), reverse=True)
    result.update(
        server_cpu_us_per_token=server_cpu / max(streamed, 1) * 1e6,
        server_cores=server_cpu / wall,
        # the share of the busiest process in the server's CPU: 1.0 for one process, ≈ 0.5
        # when two workers share the load evenly
        busiest_share=busiest[0] / server_cpu if server_cpu else 1.0,
        load_cores=load_cpu / wall,
        upstream_cores=(cpu_seconds(upstream_pid) - upstream0) / wall,
        machine_cores=(machine_busy() - machine0) / wall,
    )
    if postgres_pid:
        result["postgres_cores"] = (sum(process_tree_cpu(postgres_pid).values()) - postgres0) / wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--storage-url", default=os.environ.get("CHAT_SHELL_BENCH_POSTGRES"))
    parser.add_argument("--quick", action="store_true", help="one round of 50 streams")
    args = parser.parse_args()
    runs, streams, tokens = args.runs, args.streams, args.tokens
    if args.quick:
        runs, streams = 1, 50
    load = f"{streams} streams × {tokens} tokens unpaced"
    metric = f"unpaced throughput, {load}, `serve --workers 2` vs one worker (PostgreSQL)"
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in WORKERS}
    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(pg_server.server(args.storage_url))
            urls = {n: stack.enter_context(pg_server.database(base)) for n in WORKERS}
            version = pg_server.server_version(base)
        except pg_server.PostgresUnavailable as exc:
            print(exc, file=sys.stderr)
            label = "throughput of `serve --workers 2` against one worker"
            goal = pg_server.unavailable(label, f"≥ {GOAL}× one worker", str(exc))
            print(json.dumps({"benchmark": "workers", "rows": [goal]}, ensure_ascii=False))
            return
        postgres_pid = pg_server.server_pid(base)
        upstream_process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("bench_http.py")),
                "--upstream-port",
                "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        stack.callback(upstream_process.wait)
        stack.callback(upstream_process.terminate)
        assert upstream_process.stdout is not None
        upstream = upstream_process.stdout.readline().strip()
        servers: dict[int, Server] = {}
        for n in WORKERS:  # all at once: start-up is slow on a busy machine
            servers[n] = start(upstream, urls[n], n)
            stack.callback(stop, servers[n])
        for n, server in servers.items():
            wait_ready(server, n)
        time.sleep(2)  # every worker past its start-up
        warmup = 20 if args.quick else streams
        for n in WORKERS:  # warm-up: imports, pools, prepared statements, in every worker
            one_load(servers[n], upstream_process.pid, postgres_pid, warmup, tokens)
        for _ in range(runs):
            for n in WORKERS:
                result = one_load(servers[n], upstream_process.pid, postgres_pid, streams, tokens)
                samples[n].append(result)
                print(
                    f"--workers {n}: {result['completed']}/{streams} ok, "
                    f"{result['tokens_per_s']:.0f} tokens/s, "
                    f"{result['server_cpu_us_per_token']:.1f} µs/token, "
                    f"server {result['server_cores']:.2f} cores, "
                    f"load generator {result['load_cores']:.2f}, "
                    f"upstream {result['upstream_cores']:.2f}, "
                    f"PostgreSQL {result.get('postgres_cores', float('nan')):.2f}, "
                    f"machine {result['machine_cores']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )

    def series(n: int, field: str) -> list[float]:
        return [s[field] for s in samples[n]]

    one, two = 1, 2
    pairs = zip(series(one, "tokens_per_s"), series(two, "tokens_per_s"), strict=True)
    ratios = [b / a for a, b in pairs]
    ratio = statistics.median(ratios)
    rows = [
        row(
            metric,
            series(two, "tokens_per_s"),
            series(one, "tokens_per_s"),
            "tokens/s",
            f"≥ {GOAL}× one worker",
            ratio >= GOAL,
            ratio=ratio,
            digits=0,
        ),
        row(
            "server CPU per token (every process of `chat-shell serve`), `--workers 2` vs one"
            " worker, same load",
            series(two, "server_cpu_us_per_token"),
            series(one, "server_cpu_us_per_token"),
            "µs CPU/token",
            "(reference)",
            None,
            digits=1,
        ),
    ]
    for field, what in (
        ("server_cores", "`chat-shell serve` (every process)"),
        ("load_cores", "the load generator"),
        ("upstream_cores", "the scripted upstream"),
        ("postgres_cores", "PostgreSQL (every process of the server)"),
        ("machine_cores", "the whole machine (other work included)"),
    ):
        if any(field not in s for n in WORKERS for s in samples[n]):
            continue
        rows.append(
            row(
                f"cores busy during the load: {what}, `--workers 2` vs one worker",
                series(two, field),
                series(one, field),
                "cores",
                "(reference)",
                None,
            )
        )
    completed = series(two, "completed")
    rows.append(
        row(
            f"{load} completed, `serve --workers 2` vs one worker",
            completed,
            series(one, "completed"),
            "streams",
            f"all {streams}",
            min(completed + series(one, "completed")) == streams,
            digits=0,
        )
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = statistics.median(series(two, "busiest_share"))
    where = "a throw-away server with fsync on" if postgres_pid else "the server given"
    rows[0]["note"] = (
        f"`--workers 2` against one worker: {runs} interleaved round(s) after a warm-up; ratio:"
        f" the median of the rounds' ratios ({', '.join(f'{r:.2f}' for r in ratios)}). History"
        f" and runs in PostgreSQL {version} ({where}, a database per server, on the same"
        f" machine). This machine has {cores} cores, and during a load the load generator (one"
        " asyncio process parsing every SSE event), the scripted upstream and PostgreSQL run on"
        " them too: two workers cannot have a core each, so the ratio says what a second worker"
        " adds on a machine with no core to spare, not what it adds on cores of its own (the"
        f" cores rows show where the CPU went). The busiest of the two workers did {share:.0%}"
        " of the server's CPU (50 %: an even split)"
    )
    print("| metric | --workers 2 | one worker | ratio | unit | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for item in rows:
        mark = {True: "✅", False: "❌", None: "—"}.get(item.get("pass"), "—")
        print(
            f"| {item['metric']} | {item['ours']} | {item.get('peer', '—')} |"
            f" {item.get('ratio', '—')} | {item['unit']} | {item['goal']} | {mark} |"
        )
    print(json.dumps({"benchmark": "workers", "runs": runs, "rows": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
