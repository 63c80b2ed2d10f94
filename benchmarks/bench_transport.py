"""Model-client transport: CPU µs per token of the client process, reading OpenAI-protocol
streams from a scripted upstream in its own process on 127.0.0.1.

Two loads: 100 concurrent streams of 100 tokens paced at 50 tokens/s (every token arrives in
its own network read, as from a real model), and one unpaced 10,000-token stream. Candidates,
interleaved (A B C A B C …) after a warm-up, medians of ``--runs`` runs:

- the model client (``OpenAIBackend``, on aiohttp), one per process;
- the same reading on httpx: one shared ``httpx.AsyncClient``, the body's bytes fed to the same
  SSE parser and chunk parser (so only the HTTP layer differs);
- the floor: bare asyncio streams (a connection per stream, chunked framing read with
  ``readline``/``readexactly``), the same parsers;
- with ``--old``, chat-shell's own HTTP/1.1 client that the aiohttp client replaced (it exists
  only in the commits before that change; docs/benchmarks.md keeps the numbers measured then).

    python benchmarks/bench_transport.py [--runs 5] [--old] [--quick]

``--quick``: 3 runs, 2,000 unpaced tokens. Prints one JSON object (rows for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from bench_stream import row, start_upstream

Measure = Callable[[str, str, int], Awaitable[int]]

PACED_STREAMS, PACED_TOKENS, PACE_MS = 100, 100, 20
UNPACED_TOKENS = 10_000


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
        from chat_shell._model_backend import ChunkAccumulator
        from chat_shell._sse import SSEParser

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
                self.texts += type(part) is TextDelta


def _backend_measure(load: Callable[[], Any]) -> Measure:
    async def measure(url: str, content: str, streams: int) -> int:
        from chat_shell import ModelRequest, TextDelta

        request = ModelRequest(
            model="bench", messages=[{"role": "user", "content": content}], api_base=url
        )
        backend = load()

        async def one() -> int:
            return sum([type(part) is TextDelta async for part in backend.stream(request)])

        try:
            return sum(await asyncio.gather(*(one() for _ in range(streams))))
        finally:
            await backend.aclose()

    return measure


def _aiohttp_backend() -> Any:
    from chat_shell._openai_backend import OpenAIBackend

    return OpenAIBackend()


def _old_backend() -> Any:
    from chat_shell._http11_backend import HTTP11Backend  # type: ignore[import-not-found]

    return HTTP11Backend()


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
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, measure in candidates.items():
            samples[name].append(cpu_per_token(measure, url, content, streams, tokens))
    return samples


NEW = "aiohttp model client"
OLD = "chat-shell's HTTP/1.1 client (old)"
HTTPX = "httpx, same parsing"
FLOOR = "bare asyncio streams, same parsing (floor)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--old", action="store_true", help="also the old HTTP/1.1 client")
    parser.add_argument("--quick", action="store_true", help="3 runs, 2,000 unpaced tokens")
    args = parser.parse_args()
    unpaced_tokens = 2_000 if args.quick else UNPACED_TOKENS
    runs = 3 if args.quick else args.runs
    candidates: dict[str, Measure] = {NEW: _backend_measure(_aiohttp_backend)}
    if args.old:
        candidates[OLD] = _backend_measure(_old_backend)
    candidates[HTTPX] = httpx_client
    candidates[FLOOR] = asyncio_streams
    loads = {
        "paced": (
            True,
            f"paced {PACED_TOKENS} {PACE_MS}",
            PACED_STREAMS,
            PACED_STREAMS * PACED_TOKENS,
        ),
        "unpaced": (False, f"tokens {unpaced_tokens}", 1, unpaced_tokens),
    }
    samples: dict[str, dict[str, list[float]]] = {}
    for load, (paced, content, streams, tokens) in loads.items():
        process, url = start_upstream(paced=paced)
        try:
            samples[load] = compare(candidates, url, content, streams, tokens, runs)
        finally:
            process.terminate()
            process.wait()
    titles = {
        "paced": f"{PACED_STREAMS} concurrent streams × {PACED_TOKENS} tokens paced at "
        f"{1000 // PACE_MS} tokens/s",
        "unpaced": f"one unpaced {unpaced_tokens:,}-token stream",
    }
    rows = []
    for load, title in titles.items():
        measured = samples[load]
        if args.old:
            rows.append(
                row(f"{title}: {NEW} vs {OLD}", measured[NEW], measured[OLD], "≤ 1.1× old", 1.1)
            )
        for peer in (HTTPX, FLOOR):
            rows.append(
                row(f"{title}: {NEW} vs {peer}", measured[NEW], measured[peer], "(reference)", None)
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
