"""Library streaming cost: CPU µs per token of chat-shell's stream_chat vs a bare httpx client.

The scripted upstream runs in its own process on 127.0.0.1, so the CPU time read here (from the
OS, for this process) is the client's alone. A and B run interleaved (A B A B …), after a warm-up,
and the medians are compared. With ``--litellm`` the litellm paths are measured too.

The model client's transport alone (paced streams, one network read per token) is measured by
``bench_transport.py``.

    python benchmarks/bench_stream.py [--tokens 10000] [--runs 5] [--litellm] [--quick]

``--quick`` (for ``make bench-quick``): 2,000 tokens, 3 runs.

Prints one JSON object with the rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

Measure = Callable[[str, int], Coroutine[Any, Any, int]]  # asyncio.run takes a coroutine


async def bare_httpx(url: str, tokens: int) -> int:
    """The floor: one httpx request, SSE lines parsed, deltas collected."""
    import httpx

    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": f"tokens {tokens}"}],
        "stream": True,
    }
    received = []
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", f"{url}/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            if chunk.get("choices"):
                content = chunk["choices"][0]["delta"].get("content")
                if content:
                    received.append(content)
    return len(received)


def chat_shell_measure(model: str) -> Measure:
    async def measure(url: str, tokens: int) -> int:
        from chat_shell import DirectChatInterface, InterfaceConfig

        config = InterfaceConfig(model=model, api_base=url, api_key="sk-bench", retries=0)
        received = 0
        async with DirectChatInterface(config) as chat:
            async for _ in chat.stream_chat(f"tokens {tokens}"):
                received += 1
        return received

    return measure


async def bare_litellm(url: str, tokens: int) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    response = await litellm.acompletion(
        model="openai/bench",
        messages=[{"role": "user", "content": f"tokens {tokens}"}],
        stream=True,
        api_base=url,
        api_key="sk-bench",
    )
    received = 0
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
    return received


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "chat_shell.testing", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the scripted upstream did not start: {url!r}")
    return process, url


def cpu_per_token(measure: Measure, url: str, tokens: int) -> float:
    start = time.process_time()
    received = asyncio.run(measure(url, tokens))
    spent = time.process_time() - start
    if received < tokens * 0.99:
        raise SystemExit(f"{measure} received {received} of {tokens} tokens")
    return spent / tokens * 1e6


def compare(
    candidates: dict[str, Measure], url: str, tokens: int, runs: int
) -> dict[str, list[float]]:
    for measure in candidates.values():  # warm-up: imports, first connections
        cpu_per_token(measure, url, min(tokens, 1000))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, measure in candidates.items():
            samples[name].append(cpu_per_token(measure, url, tokens))
    return samples


def row(
    metric: str, ours: list[float], peer: list[float] | None, goal: str, limit: float | None
) -> dict[str, Any]:
    ours_median = statistics.median(ours)
    result: dict[str, Any] = {
        "metric": metric,
        "ours": round(ours_median, 1),
        "ours_range": [round(min(ours), 1), round(max(ours), 1)],
        "unit": "µs CPU/token",
        "goal": goal,
    }
    if peer is not None:
        peer_median = statistics.median(peer)
        result["peer"] = round(peer_median, 1)
        result["peer_range"] = [round(min(peer), 1), round(max(peer), 1)]
        result["ratio"] = round(ours_median / peer_median, 2)
        if limit is not None:
            result["pass"] = result["ratio"] <= limit
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--litellm", action="store_true", help="also measure the litellm paths")
    parser.add_argument("--quick", action="store_true", help="2,000 tokens, 3 runs")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.runs = 2_000, 3
    process, url = start_upstream()
    try:
        candidates: dict[str, Measure] = {
            "bare httpx": bare_httpx,
            "chat-shell openai/": chat_shell_measure("openai/bench"),
        }
        if args.litellm:
            candidates["bare litellm"] = bare_litellm
            candidates["chat-shell litellm"] = chat_shell_measure("hosted_vllm/bench")
        samples = compare(candidates, url, args.tokens, args.runs)
    finally:
        process.terminate()
        process.wait()
    rows = [
        row(
            "stream_chat, openai/ model, vs bare httpx",
            samples["chat-shell openai/"],
            samples["bare httpx"],
            "≤ 2× bare httpx",
            2.0,
        ),
    ]
    if args.litellm:
        rows.append(
            row(
                "bare litellm.acompletion vs bare httpx",
                samples["bare litellm"],
                samples["bare httpx"],
                "(reference)",
                None,
            )
        )
        rows.append(
            row(
                "stream_chat, litellm path, vs bare litellm",
                samples["chat-shell litellm"],
                samples["bare litellm"],
                "(reference)",
                None,
            )
        )
    print(
        json.dumps(
            {
                "benchmark": "library streaming",
                "tokens": args.tokens,
                "runs": args.runs,
                "samples": samples,
                "rows": rows,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
