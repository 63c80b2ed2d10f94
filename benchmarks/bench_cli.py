"""CLI speed: whole-process wall time of `chat-shell` commands vs the `llm` CLI, side by side.

`llm` is installed in its own venv (benchmarks/.venv-peers, made with `uv venv` + `uv pip install
llm`; never a project dependency). Both query the same scripted upstream (its own process on
127.0.0.1) for a 100-token answer; chat-shell stores history in SQLite, llm logs to its SQLite
database (logging on, its default). Commands run interleaved (A B A B …) after a warm-up; medians.

    python benchmarks/bench_cli.py [--runs 9]

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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".venv-peers"
OURS = Path(sys.executable).with_name("chat-shell")


def llm_binary() -> Path:
    binary = PEERS / "bin" / "llm"
    if not binary.exists():
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "--quiet", str(PEERS)], check=True)
        python = str(PEERS / "bin" / "python")
        subprocess.run([uv, "pip", "install", "--quiet", "--python", python, "llm"], check=True)
    return binary


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "chat_shell.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the scripted upstream did not start: {url!r}")
    return process, url


def wall_ms(command: list[str], env: dict[str, str], expect: str | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    spent = (time.perf_counter() - start) * 1000
    if result.returncode != 0 or (expect is not None and expect not in result.stdout):
        raise SystemExit(f"{command} failed ({result.returncode}): {result.stderr[-500:]}")
    return spent


def row(metric: str, ours: list[float], peer: list[float], goal: float) -> dict[str, Any]:
    ours_median, peer_median = statistics.median(ours), statistics.median(peer)
    ratio = round(ours_median / peer_median, 2)
    return {
        "metric": metric,
        "ours": round(ours_median),
        "ours_range": [round(min(ours)), round(max(ours))],
        "peer": round(peer_median),
        "peer_range": [round(min(peer)), round(max(peer))],
        "ratio": ratio,
        "unit": "ms wall",
        "goal": f"≤ {goal}× llm",
        "pass": ratio <= goal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    llm = llm_binary()
    process, url = start_upstream()
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
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
        prompt = "tokens 100"
        cases = {
            "help": (
                ([str(OURS), "--help"], ours_env, None),
                ([str(llm), "--help"], llm_env, None),
            ),
            "history": (
                ([str(OURS), "history"], ours_env, None),
                ([str(llm), "--help"], llm_env, None),
            ),
            "config show": (
                ([str(OURS), "config", "show"], ours_env, None),
                ([str(llm), "--help"], llm_env, None),
            ),
            "query": (
                ([str(OURS), "query", prompt], ours_env, "t99"),
                ([str(llm), "-m", "bench", prompt], llm_env, "t99"),
            ),
        }
        # warm-up: byte-compile, create the history and log databases
        for ours, peer in cases.values():
            for command, env, expect in (ours, peer):
                wall_ms(command, env, expect)
        samples: dict[str, dict[str, list[float]]] = {
            name: {"ours": [], "peer": []} for name in cases
        }
        for _ in range(args.runs):
            for name, (ours, peer) in cases.items():
                samples[name]["ours"].append(wall_ms(*ours))
                samples[name]["peer"].append(wall_ms(*peer))
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        row("`chat-shell --help` vs `llm --help`", **samples["help"], goal=0.3),
        row("`chat-shell history` (SQLite) vs `llm --help`", **samples["history"], goal=0.3),
        row("`chat-shell config show` vs `llm --help`", **samples["config show"], goal=0.3),
        row(
            "`chat-shell query` 100 tokens, SQLite history, vs `llm -m` (logging on), "
            "same scripted upstream",
            **samples["query"],
            goal=0.6,
        ),
    ]
    print("| metric | chat-shell | llm | ratio | goal | pass |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['metric']} | {r['ours']} ({r['ours_range'][0]}–{r['ours_range'][1]}) | "
            f"{r['peer']} ({r['peer_range'][0]}–{r['peer_range'][1]}) | {r['ratio']} | "
            f"{r['goal']} | {'✅' if r['pass'] else '❌'} |"
        )
    print(
        json.dumps(
            {"benchmark": "cli", "runs": args.runs, "samples": samples, "rows": rows},
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
