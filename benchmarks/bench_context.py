"""The context window: the token estimate's cost and error, the model table's load, fitting.

    python benchmarks/bench_context.py [--quick]

- **Estimate error**: ``estimate_tokens`` against real tokenizers on the same texts: OpenAI's
  ``cl100k_base`` (GPT-4, GPT-3.5) and ``o200k_base`` (GPT-4o and later) through tiktoken, and
  the Claude tokenizer litellm ships (through ``tokenizers``). Texts: the docs (English
  prose), chat-shell's own source (code), recorded SSE streams and a generated JSON document
  (tool output), and a paragraph each of German, Russian and Chinese. tiktoken reads its
  encodings from litellm's bundled cache: nothing is downloaded.
- **Estimate cost**: CPU per character of ``estimate_tokens`` and of tiktoken's ``encode``,
  interleaved, median of runs.
- **Model table**: CPU to read ``model_table.json`` (what chat-shell reads, once per process)
  and litellm's whole ``model_prices_and_context_window_backup.json``, each in a fresh process.
- **Fitting**: CPU of ``RequestContext.fit`` on a 1,000-message conversation that must drop,
  the first time (every message estimated) and again (estimates kept).

Prints one JSON line (``rows``) for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

GERMAN = (
    "Lange Unterhaltungen müssen in das Kontextfenster des Modells passen. Jede Anfrage darf "
    "das Budget nicht überschreiten; die ältesten Nachrichten werden zuerst verworfen, und "
    "die gespeicherte Geschichte bleibt vollständig erhalten. "
)
RUSSIAN = (
    "Длинные разговоры должны помещаться в контекстное окно модели. Каждый запрос не должен "
    "превышать бюджет токенов, а самые старые сообщения отбрасываются первыми; сохранённая "
    "история остаётся полной. "
)
CHINESE = (
    "长对话必须适合模型的上下文窗口。每个请求都不应超过令牌预算，"
    "最早的消息首先被丢弃，保存的历史记录保持完整。"
)


def texts() -> dict[str, str]:
    docs = sorted((ROOT / "docs").glob("*.md"))
    code = sorted((ROOT / "packages" / "chat-shell-core" / "src").rglob("*.py"))
    streams = sorted((ROOT / "tests" / "fixtures" / "upstreams").rglob("*"))
    rows = [
        {"id": i, "name": f"item-{i}", "price": round(i * 3.14159, 2), "tags": ["a", "b"]}
        for i in range(400)
    ]
    return {
        "English prose (docs/)": "\n".join(p.read_text(encoding="utf-8") for p in docs),
        "Python code (core)": "\n".join(p.read_text(encoding="utf-8") for p in code),
        "SSE streams (fixtures)": "\n".join(
            p.read_text(encoding="utf-8", errors="replace") for p in streams if p.is_file()
        ),
        "JSON tool output": json.dumps({"rows": rows}, indent=1),
        "German": GERMAN * 40,
        "Russian": RUSSIAN * 40,
        "Chinese": CHINESE * 40,
    }


def tokenizers() -> dict[str, Any]:
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        raise SystemExit("litellm (with tiktoken and tokenizers) is needed: uv sync --all-packages")
    bundled = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))
    import tiktoken
    from tokenizers import Tokenizer

    claude = Tokenizer.from_file(str(bundled / "anthropic_tokenizer.json"))
    return {
        "cl100k_base": lambda text: len(
            tiktoken.get_encoding("cl100k_base").encode(text, disallowed_special=())
        ),
        "o200k_base": lambda text: len(
            tiktoken.get_encoding("o200k_base").encode(text, disallowed_special=())
        ),
        "claude": lambda text: len(claude.encode(text).ids),
    }


def cpu(function: Any, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        function()
    return (time.process_time() - started) / repeat


def estimate_cost(sample: str, runs: int) -> dict[str, list[float]]:
    import tiktoken
    from chat_shell._agent.context import estimate_tokens

    encoding = tiktoken.get_encoding("o200k_base")
    encoding.encode(sample)  # warm-up
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(runs):  # interleaved
        ours.append(cpu(lambda: estimate_tokens(sample), 50) / len(sample) * 1e9)
        theirs.append(
            cpu(lambda: encoding.encode(sample, disallowed_special=()), 2) / len(sample) * 1e9
        )
    return {"ours": ours, "tiktoken": theirs}


_LOAD = {
    "ours": (
        "import time\n"
        "from chat_shell._models import model_table\n"
        "t = time.process_time(); model_table._table(); print(time.process_time() - t)"
    ),
    "litellm json": (
        "import time, json, importlib.util, pathlib\n"
        "origin = pathlib.Path(importlib.util.find_spec('litellm').origin)\n"
        "path = origin.parent / 'model_prices_and_context_window_backup.json'\n"
        "t = time.process_time(); json.loads(path.read_text()); print(time.process_time() - t)"
    ),
}


def table_load(runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in _LOAD}
    for _ in range(runs):
        for name, code in _LOAD.items():
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            samples[name].append(float(out.stdout.strip()) * 1000)
    return samples


def fitting(runs: int) -> dict[str, list[float]]:
    from chat_shell import Message, ToolCall
    from chat_shell._agent.context import Budget, RequestContext

    history: list[Message] = []
    for index in range(250):
        call = ToolCall(id=f"c{index}", name="lookup", arguments={"q": f"item {index}"})
        history += [
            Message(role="user", content=f"question {index} " + "word " * 60),
            Message(role="assistant", tool_calls=[call]),
            Message(
                role="tool", content=json.dumps({"rows": list(range(40))}), tool_call_id=call.id
            ),
            Message(role="assistant", content=f"answer {index} " + "word " * 80),
        ]
    budget = Budget(window=16_000, answer=1_000)
    first: list[float] = []
    again: list[float] = []
    for _ in range(runs):
        fit = RequestContext(history, [Message(role="user", content="now")]).fit
        first.append(cpu(lambda fit=fit: fit(budget), 1) * 1000)
        again.append(cpu(lambda fit=fit: fit(budget), 20) * 1000)
    return {"first": first, "again": again}


def spread(values: list[float], digits: int = 2) -> dict[str, Any]:
    return {
        "ours": round(statistics.median(values), digits),
        "ours_range": [round(min(values), digits), round(max(values), digits)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    from chat_shell._agent.context import estimate_tokens

    counters = tokenizers()
    samples = texts()
    errors: dict[str, dict[str, float]] = {}
    print("| text | characters | estimate | " + " | ".join(counters) + " |")
    print("| --- | ---: | ---: |" + " ---: |" * len(counters))
    for label, text in samples.items():
        estimate = estimate_tokens(text)
        real = {name: count(text) for name, count in counters.items()}
        errors[label] = {name: round(estimate / value - 1, 3) for name, value in real.items()}
        cells = " | ".join(f"{real[name]:,} ({errors[label][name]:+.0%})" for name in counters)
        print(f"| {label} | {len(text):,} | {estimate:,} | {cells} |")
    cost = estimate_cost(samples["English prose (docs/)"], runs)
    load = table_load(runs)
    fit = fitting(runs)
    out: list[dict[str, Any]] = []
    for label, by_tokenizer in errors.items():
        worst = max(by_tokenizer.values(), key=abs)
        out.append(
            {
                "metric": f"token estimate vs real tokenizers: {label}",
                "ours": ", ".join(f"{name} {value:+.0%}" for name, value in by_tokenizer.items()),
                "unit": "error",
                "goal": "(reference)",
                "worst": worst,
            }
        )
    out[0]["note"] = (
        "estimate / real count - 1 per tokenizer (positive: over-counted, so more is left out"
        " than needed; negative: under-counted, covered by the 10 % of the window kept free)"
    )
    ours, theirs = cost["ours"], cost["tiktoken"]
    out.append(
        {
            "metric": "token estimate CPU per character (English prose), vs tiktoken o200k encode",
            **spread(ours, 3),
            "peer": round(statistics.median(theirs), 1),
            "peer_range": [round(min(theirs), 1), round(max(theirs), 1)],
            "ratio": round(statistics.median(ours) / statistics.median(theirs), 4),
            "unit": "ns",
            "goal": "(comparison)",
        }
    )
    out.append(
        {
            "metric": "model table read (fresh process), vs litellm's whole JSON table",
            **spread(load["ours"], 1),
            "peer": round(statistics.median(load["litellm json"]), 1),
            "peer_range": [
                round(min(load["litellm json"]), 1),
                round(max(load["litellm json"]), 1),
            ],
            "ratio": round(
                statistics.median(load["ours"]) / statistics.median(load["litellm json"]), 2
            ),
            "unit": "ms CPU",
            "goal": "(comparison)",
        }
    )
    out.append(
        {
            "metric": "fit a 1,000-message conversation into 16k tokens, first request of a run",
            **spread(fit["first"]),
            "unit": "ms CPU",
            "goal": "(reference)",
        }
    )
    out.append(
        {
            "metric": "fit the same conversation again (estimates kept within the run)",
            **spread(fit["again"]),
            "unit": "ms CPU",
            "goal": "(reference)",
        }
    )
    for row in out[-4:]:
        print(f"{row['metric']}: {row['ours']} {row['unit']}")
    print(
        json.dumps(
            {"benchmark": "context window", "errors": errors, "rows": out}, ensure_ascii=False
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
