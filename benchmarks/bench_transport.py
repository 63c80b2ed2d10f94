"""Model-client transport: CPU µs per token of the client process, reading OpenAI-protocol
streams from a scripted upstream in its own process on 127.0.0.1.

Three loads: 100 concurrent streams of 100 tokens paced at 50 tokens/s (every token arrives in
its own network read, as from a real model); one unpaced 10,000-token stream; one answer whose
single chunk carries 8 MB of text (one SSE line read in many pieces: the cost must stay linear
in the line's length). Candidates, interleaved (A B C A B C …) after a warm-up, medians of
``--runs`` runs:

- the model client (``OpenAIBackend``, on aiohttp), one per process;
- the same reading on httpx: one shared ``httpx.AsyncClient``, the body's bytes fed to the same
  SSE parser and chunk parser (so only the HTTP layer differs);
- the floor: bare asyncio streams (a connection per stream, chunked framing read with
  ``readline``/``readexactly``), the same parsers.

chat-shell's own HTTP/1.1 client, which the aiohttp client replaced, was measured here against
it before it was deleted; docs/benchmarks.md keeps that table (``RECORDED`` in run.py).

    python benchmarks/bench_transport.py [--runs 5] [--quick]

``--quick``: 3 runs, 2,000 unpaced tokens. Prints one JSON object (rows for docs/benchmarks.md).
The upstream is this script too (``--upstream-port``): the scripted server, which also
understands ``paced N MS`` and ``big N`` (one chunk of N characters).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from bench_stream import row

Measure = Callable[[str, str, int], Coroutine[Any, Any, int]]  # asyncio.run takes a coroutine

PACED_STREAMS, PACED_TOKENS, PACE_MS = 100, 100, 20
UNPACED_TOKENS = 10_000
BIG = 8_000_000  # characters in the one chunk of the long-line load


def upstream_main(port: int) -> None:
    import threading

    from chat_shell.testing import Reply, ScriptedModelServer, default_responder

    def responder(request: dict[str, Any]) -> Any:
        content = str((request.get("messages") or [{}])[-1].get("content") or "").strip()
        if match := re.fullmatch(r"paced (\d+) (\d+)", content):
            return Reply.tokens(int(match.group(1)), delay=int(match.group(2)) / 1000)
        if match := re.fullmatch(r"big (\d+)", content):
            return Reply(chunks=["x" * int(match.group(1))])
        return default_responder(request)

    with ScriptedModelServer(responder=responder, port=port) as server:
        print(server.url, flush=True)
        threading.Event().wait()


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, __file__, "--upstream-port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the scripted upstream did not start: {url!r}")
    return process, url


def _body(content: str) -> bytes:
    return json.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": content}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()


class _Reader:
    """The parsing every bare candidate shares: SSE events → chunks → text deltas counted."""

    def __init__(self) -> None:
        from chat_shell._models.backend import ChunkAccumulator
        from chat_shell._models.sse import SSEParser

        self.parser = SSEParser()
        self.accumulator = ChunkAccumulator()
        self.texts = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        from chat_shell import TextDelta

        for _, payload in self.parser.feed(data):
            if payload == b"[DONE]":
                self.done = True
                return
            for part in self.accumulator.feed(json.loads(payload)):
                if type(part) is TextDelta:
                    self.texts += 1 if len(part.text) < 1000 else len(part.text)


def _count(part: Any) -> int:
    """A text delta counts 1, or its length for the long-line load's one huge delta."""
    from chat_shell import TextDelta

    if type(part) is not TextDelta:
        return 0
    return 1 if len(part.text) < 1000 else len(part.text)


def _backend_measure(load: Callable[[], Any]) -> Measure:
    async def measure(url: str, content: str, streams: int) -> int:
        from chat_shell import ModelRequest

        request = ModelRequest(
            model="bench", messages=[{"role": "user", "content": content}], api_base=url
        )
        backend = load()

        async def one() -> int:
            return sum([_count(part) async for part in backend.stream(request)])

        try:
            return sum(await asyncio.gather(*(one() for _ in range(streams))))
        finally:
            await backend.aclose()

    return measure


def _aiohttp_backend() -> Any:
    from chat_shell._models.openai_backend import OpenAIBackend

    return OpenAIBackend()


async def httpx_client(url: str, content: str, streams: int) -> int:
    import httpx

    body = _body(content)
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=streams)

    async def one(client: httpx.AsyncClient) -> int:
        reader = _Reader()
        async with client.stream(
            "POST", f"{url}/chat/completions", content=body, headers=headers
        ) as response:
            async for data in response.aiter_raw():
                reader.feed(data)
        return reader.texts

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return sum(await asyncio.gather(*(one(client) for _ in range(streams))))


async def asyncio_streams(url: str, content: str, streams: int) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = _body(content)
    head = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def one() -> int:
        stream, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head + body)
            await stream.readuntil(b"\r\n\r\n")  # the scripted upstream answers chunked
            reader = _Reader()
            while size := int((await stream.readline()).split(b";")[0], 16):
                reader.feed(await stream.readexactly(size))
                await stream.readexactly(2)
            return reader.texts
        finally:
            writer.close()

    return sum(await asyncio.gather(*(one() for _ in range(streams))))


def cpu_per_token(measure: Measure, url: str, content: str, streams: int, tokens: int) -> float:
    start = time.process_time()
    received = asyncio.run(measure(url, content, streams))
    spent = time.process_time() - start
    if received < tokens:
        raise SystemExit(f"{measure} received {received} of {tokens} tokens")
    return spent / tokens * 1e6


def compare(
    candidates: dict[str, Measure], url: str, content: str, streams: int, tokens: int, runs: int
) -> dict[str, list[float]]:
    for measure in candidates.values():  # warm-up: imports, first connections
        cpu_per_token(measure, url, content, streams, tokens)
    print(f"  measuring {content!r} …", file=sys.stderr, flush=True)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, measure in candidates.items():
            samples[name].append(cpu_per_token(measure, url, content, streams, tokens))
    return samples


NEW = "aiohttp model client"
HTTPX = "httpx, same parsing"
FLOOR = "bare asyncio streams, same parsing (floor)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs, 2,000 unpaced tokens")
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_port is not None:
        upstream_main(args.upstream_port)
        return
    unpaced_tokens = 2_000 if args.quick else UNPACED_TOKENS
    runs = 3 if args.quick else args.runs
    candidates: dict[str, Measure] = {
        NEW: _backend_measure(_aiohttp_backend),
        HTTPX: httpx_client,
        FLOOR: asyncio_streams,
    }
    # name: (the request's content, concurrent streams, what counts as received)
    loads = {
        "paced": (f"paced {PACED_TOKENS} {PACE_MS}", PACED_STREAMS, PACED_STREAMS * PACED_TOKENS),
        "unpaced": (f"tokens {unpaced_tokens}", 1, unpaced_tokens),
        "long line": (f"big {BIG}", 1, BIG),
    }
    process, url = start_upstream()
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        for load, (content, streams, tokens) in loads.items():
            samples[load] = compare(candidates, url, content, streams, tokens, runs)
    finally:
        process.terminate()
        process.wait()
    for name, per_character in samples["long line"].items():  # µs per character → ms per answer
        samples["long line"][name] = [value * BIG / 1000 for value in per_character]
    titles = {
        "paced": f"{PACED_STREAMS} concurrent streams × {PACED_TOKENS} tokens paced at "
        f"{1000 // PACE_MS} tokens/s",
        "unpaced": f"one unpaced {unpaced_tokens:,}-token stream",
        "long line": "one answer whose one chunk holds 8 MB of text (a single SSE line)",
    }
    long_line = samples["long line"][NEW]
    rows = [
        {
            "metric": f"{titles['long line']}: {NEW}",
            "ours": round(statistics.median(long_line), 1),
            "ours_range": [round(min(long_line), 1), round(max(long_line), 1)],
            "unit": "ms CPU per answer",
            "goal": "well under 1 s (≤ 250 ms)",
            "pass": statistics.median(long_line) <= 250,
        }
    ]
    for load, title in titles.items():
        measured = samples[load]
        unit = "ms CPU per answer" if load == "long line" else "µs CPU/token"
        for peer in (HTTPX, FLOOR):
            rows.append(
                {
                    **row(
                        f"{title}: {NEW} vs {peer}",
                        measured[NEW],
                        measured[peer],
                        "(reference)",
                        None,
                    ),
                    "unit": unit,
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "transport",
                "runs": runs,
                "samples": samples,
                "rows": rows,
                "medians": {
                    load: {name: round(statistics.median(v), 1) for name, v in measured.items()}
                    for load, measured in samples.items()
                },
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
