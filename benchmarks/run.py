"""Run the benchmarks and write docs/benchmarks.md (and benchmarks/results/latest.json).

    python benchmarks/run.py            # what `make bench` runs

Each benchmark script prints one JSON object with ``rows``; this script runs them in turn and
renders one table. Timing goals live here, never in tests.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = [
    ["bench_stream.py", "--tokens", "10000", "--runs", "5", "--litellm"],
    ["bench_sqlite.py"],
    ["bench_cli.py"],
    ["bench_http.py", "--runs", "5"],
]


def import_times(runs: int = 7) -> dict[str, Any]:
    """Wall time of a fresh interpreter importing chat_shell, interleaved with a bare one."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import chat_shell": [sys.executable, "-c", "import chat_shell"],
        "import litellm": [
            sys.executable,
            "-c",
            "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP']='True'; import litellm",
        ],
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True)
            samples[name].append((time.perf_counter() - start) * 1000)
    ours = samples["import chat_shell"]
    peer = samples["import litellm"]
    return {
        "benchmark": "import time",
        "samples": samples,
        "rows": [
            {
                "metric": "`import chat_shell` (fresh process, wall) vs `import litellm`",
                "ours": round(statistics.median(ours)),
                "ours_range": [round(min(ours)), round(max(ours))],
                "peer": round(statistics.median(peer)),
                "peer_range": [round(min(peer)), round(max(peer))],
                "ratio": round(statistics.median(ours) / statistics.median(peer), 2),
                "unit": "ms",
                "goal": "never imports litellm (tested)",
                "note": f"bare interpreter: {statistics.median(samples['python -c pass']):.0f} ms",
            }
        ],
    }


def cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "—"
    low, high = row.get(f"{key}_range", [None, None])
    spread = f" ({low}–{high})" if low is not None else ""
    return f"{row[key]}{spread}"


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`python benchmarks/run.py`), which rewrites this page. Each",
        "comparison runs in one process tree, A and B interleaved, 5 or more runs after a warm-up;",
        "cells show the median with min–max. CPU time is read from the OS for the measuring",
        "process only (the scripted upstream runs in its own process), because wall time on a",
        "shared 2-core machine moves ±40 %.",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}; run on {time.strftime('%Y-%m-%d')}.",
        "",
        "| metric | chat-shell | peer / floor | ratio | unit | goal | pass |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        for row in result["rows"]:
            passed = {True: "✅", False: "❌"}.get(row.get("pass"), "—")  # type: ignore[call-overload]
            lines.append(
                f"| {row['metric']} | {cell(row, 'ours')} | {cell(row, 'peer')} | "
                f"{row.get('ratio', '—')} | {row.get('unit', '')} | {row.get('goal', '')} "
                f"| {passed} |"
            )
    notes = [row["note"] for result in results for row in result["rows"] if row.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    lines += ["", "Raw samples: `benchmarks/results/latest.json` (not committed).", ""]
    return "\n".join(lines)


def main() -> None:
    results = [import_times()]
    for command in BENCHMARKS:
        script = HERE / command[0]
        if not script.exists():
            continue
        print(f"running {' '.join(command)} …", file=sys.stderr, flush=True)
        output = subprocess.run(
            [sys.executable, str(script), *command[1:]], check=True, capture_output=True, text=True
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (ROOT / "docs" / "benchmarks.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
