"""CLI speed: whole-process wall time of `chat-shell` commands vs the `llm` CLI, side by side.

`llm` is installed in its own venv (benchmarks/.venv-peers, made with `uv venv` + `uv pip install
llm`; never a project dependency). Floors: a bare typer app (floor_typer.py) for start-up, and a
bare httpx one-shot (oneshot_httpx.py) for `query`; a litellm one-shot (oneshot_litellm.py) is
measured too. Every one-shot asks the same scripted upstream (its own process on 127.0.0.1) for a
100-token answer; chat-shell stores history in SQLite, llm logs to its SQLite database (logging
on, its default). All commands run interleaved (A B C … A B C …) after a warm-up; medians with
min–max. Peak RSS of each process is its own ``ru_maxrss`` from ``wait4``.

    python benchmarks/bench_cli.py [--runs 9] [--quick]

Prints a markdown table, then (last line) one JSON object with the rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_stream import start_upstream  # a sibling script: benchmarks/ is on sys.path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".venv-peers"
LLM_VERSION = "0.36"  # the peer, pinned so that runs compare like with like
OURS = Path(sys.executable).with_name("chat-shell")
HEAVY = ("litellm", "fastapi", "uvicorn")


@dataclass
class Candidate:
    command: list[str]
    env: dict[str, str]
    expect: str | None = None


def llm_binary() -> Path:
    """The `llm` CLI in its own venv (benchmarks/.venv-peers), installed on first use."""
    binary = PEERS / "bin" / "llm"
    if not binary.exists():
        # `make bench` passes the uv it bootstrapped; otherwise the one on PATH.
        uv = os.environ.get("UV") or shutil.which("uv") or str(HERE.parent / ".uv-bootstrap/bin/uv")
        subprocess.run([uv, "venv", "--quiet", str(PEERS)], check=True)
        python = str(PEERS / "bin" / "python")
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", python, f"llm=={LLM_VERSION}"],
            check=True,
        )
    return binary


def run_once(candidate: Candidate) -> tuple[float, int]:
    """(wall ms, peak RSS in KiB) of one whole process; the RSS is the child's own (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            candidate.command, env=candidate.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        spent = (time.perf_counter() - start) * 1000
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        if process.returncode != 0 or (candidate.expect and candidate.expect not in stdout):
            err.seek(0)
            tail = err.read().decode(errors="replace")[-500:]
            raise SystemExit(f"{candidate.command} failed ({process.returncode}): {tail}")
    return spent, usage.ru_maxrss


def heavy_imports(candidate: Candidate, work: Path) -> list[str]:
    """Which of litellm/fastapi/uvicorn the command imports (chat-shell's own module dump)."""
    dump = work / "modules.txt"
    run_once(Candidate(candidate.command, {**candidate.env, "CHAT_SHELL_PRINT_MODULES": str(dump)}))
    modules = set(dump.read_text().split())
    return [name for name in HEAVY if name in modules]


def row(
    metric: str,
    ours: list[float],
    peer: list[float],
    goal: float | None,
    unit: str = "ms wall",
    peer_name: str = "llm",
    extra_pass: bool = True,
    note: str | None = None,
) -> dict[str, Any]:
    ours_median, peer_median = statistics.median(ours), statistics.median(peer)
    ratio = round(ours_median / peer_median, 2)
    out: dict[str, Any] = {
        "metric": metric,
        "ours": round(ours_median),
        "ours_range": [round(min(ours)), round(max(ours))],
        "peer": round(peer_median),
        "peer_range": [round(min(peer)), round(max(peer))],
        "ratio": ratio,
        "unit": unit,
        "goal": f"≤ {goal}× {peer_name}" if goal is not None else "(floor / reference)",
    }
    if goal is not None:
        out["pass"] = ratio <= goal and extra_pass
    if note:
        out["note"] = note
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 runs, no litellm one-shot")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    llm = llm_binary()
    process, url = start_upstream()
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    py = sys.executable
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_SHELL_", "LLM_"))}
        ours_env = {
            **base,
            "CHAT_SHELL_HOME": str(work / "home"),
            "OPENAI_BASE_URL": url,
            "OPENAI_API_KEY": "sk-bench",
            "CHAT_SHELL_MODEL": "openai/bench",
        }
        llm_home = work / "llm"
        llm_home.mkdir()
        (llm_home / "extra-openai-models.yaml").write_text(
            f"- model_id: bench\n  model_name: bench\n  api_base: {url}\n"
        )
        llm_env = {**base, "LLM_USER_PATH": str(llm_home), "OPENAI_API_KEY": "sk-bench"}
        floor_env = {**base, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-bench"}
        prompt = "tokens 100"
        candidates = {
            "chat-shell --help": Candidate([str(OURS), "--help"], ours_env),
            "chat-shell history": Candidate([str(OURS), "history"], ours_env),
            "chat-shell config show": Candidate([str(OURS), "config", "show"], ours_env),
            "llm --help": Candidate([str(llm), "--help"], llm_env),
            "typer floor --help": Candidate([py, str(HERE / "floor_typer.py"), "--help"], base),
            "chat-shell query": Candidate([str(OURS), "query", prompt], ours_env, "t99"),
            "llm -m": Candidate([str(llm), "-m", "bench", prompt], llm_env, "t99"),
            "httpx one-shot": Candidate(
                [py, str(HERE / "oneshot_httpx.py"), prompt], floor_env, "t99"
            ),
            "litellm one-shot": Candidate(
                [py, str(HERE / "oneshot_litellm.py"), prompt], floor_env, "t99"
            ),
        }
        if args.quick:  # importing litellm takes ~6 s a run: too slow for the quick subset
            del candidates["litellm one-shot"]
        # warm-up: byte-compile, create the history and log databases
        for candidate in candidates.values():
            run_once(candidate)
        heavy = {
            name: heavy_imports(candidates[name], work)
            for name in ("chat-shell --help", "chat-shell history", "chat-shell config show")
        }
        wall: dict[str, list[float]] = {name: [] for name in candidates}
        rss: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(runs):
            for name, candidate in candidates.items():
                spent, peak = run_once(candidate)
                wall[name].append(spent)
                rss[name].append(peak / 1024)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for name in ("chat-shell --help", "chat-shell history", "chat-shell config show"):
        loaded = heavy[name]
        note = None
        if loaded:
            note = f"`{name}` imported {', '.join(loaded)}"
        label = "`chat-shell history` (SQLite)" if name == "chat-shell history" else f"`{name}`"
        rows.append(
            row(
                f"start-up: {label} vs `llm --help`",
                wall[name],
                wall["llm --help"],
                0.3,
                extra_pass=not loaded,
                note=note,
            )
        )
        rows[-1]["goal"] += ", imports no litellm/fastapi/uvicorn" + (" ✗" if loaded else " ✓")
    for name in ("chat-shell --help", "chat-shell history", "chat-shell config show"):
        rows.append(
            row(
                f"start-up: `{name}` vs a bare typer app's `--help` (floor)",
                wall[name],
                wall["typer floor --help"],
                None,
            )
        )
    rows.append(
        row(
            "one-shot: `chat-shell query` 100 tokens, SQLite history, vs `llm -m` (logging on), "
            "same scripted upstream",
            wall["chat-shell query"],
            wall["llm -m"],
            0.6,
            peer_name="llm -m",
        )
    )
    rows.append(
        row(
            "one-shot: `chat-shell query` vs a bare httpx one-shot, no history (floor)",
            wall["chat-shell query"],
            wall["httpx one-shot"],
            None,
        )
    )
    if wall.get("litellm one-shot"):
        rows.append(
            row(
                "one-shot: `chat-shell query` vs a litellm.acompletion one-shot, no history",
                wall["chat-shell query"],
                wall["litellm one-shot"],
                None,
            )
        )
    rows.append(
        row(
            "memory: peak RSS of `chat-shell query` vs `llm -m`",
            rss["chat-shell query"],
            rss["llm -m"],
            None,
            unit="MiB",
        )
    )
    rows.append(
        row(
            "memory: peak RSS of `chat-shell query` vs the bare httpx one-shot (floor)",
            rss["chat-shell query"],
            rss["httpx one-shot"],
            None,
            unit="MiB",
        )
    )
    if rss.get("litellm one-shot"):
        rows.append(
            row(
                "memory: peak RSS of `chat-shell query` vs the litellm one-shot",
                rss["chat-shell query"],
                rss["litellm one-shot"],
                None,
                unit="MiB",
            )
        )
    print("| metric | chat-shell | peer | ratio | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mark = {True: "✅", False: "❌", None: "—"}.get(r.get("pass"), "—")
        print(
            f"| {r['metric']} | {r['ours']} ({r['ours_range'][0]}–{r['ours_range'][1]}) | "
            f"{r['peer']} ({r['peer_range'][0]}–{r['peer_range'][1]}) | {r['ratio']} | "
            f"{r['goal']} | {mark} |"
        )
    print(
        json.dumps(
            {
                "benchmark": "cli",
                "runs": runs,
                "samples": {"wall_ms": wall, "peak_rss_mib": rss},
                "heavy_imports": heavy,
                "rows": rows,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
