"""Connection limits (HTTPProtocol): a request head must arrive within ``head_timeout_seconds``
and fit ``max_head_bytes``; open connections are capped below the file-descriptor limit;
ordinary requests and long streams are not touched. Real sockets to real servers, with both of
uvicorn's HTTP/1.1 parsers, and in every documented way of starting the server."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from chat_shell_http import HTTPProtocol
from chat_shell_http._connections import connection_cap, guarded
from http_support import (
    ProcessServer,
    ThreadServer,
    make_settings,
    sse_frames,
    user,
    write_config,
)
from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOLS = {"httptools": HTTPProtocol, "h11": guarded(H11Protocol)}
DEADLINE = 1.0
MARGIN = 2.0  # the bound the tests hold the server to: DEADLINE + MARGIN


@pytest.fixture(scope="module", params=list(PROTOCOLS))
def limited(
    request: pytest.FixtureRequest,
    upstream: ScriptedModelServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ThreadServer]:
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("limited"),
        rate_limit_per_minute=0,
        head_timeout_seconds=DEADLINE,
        max_head_bytes=4096,
    )
    running = ThreadServer(settings, http=PROTOCOLS[request.param]).start()
    yield running
    running.stop()


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after ``within`` s."""
    data = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def answer_soon(reader: asyncio.StreamReader, within: float = 1.0) -> bytes | None:
    """What the server sends at once on a connection that sends nothing (``None``: nothing
    within ``within`` s; it waits for a request)."""
    try:
        return await read_until_closed(reader, within)
    except TimeoutError:
        return None


def error_of(answer: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, error object and headers of one raw HTTP answer of the documented shape."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert headers["content-type"] == "application/json", answer
    error = json.loads(body)["error"]
    assert set(error) >= {"code", "message", "retryable"}
    return int(status_line.split()[1]), error, headers


async def closed_after(port: int, send: bytes = b"", every: float | None = None) -> bytes:
    """Open a connection, send ``send`` (then one more header line every ``every`` s), and
    return what the server answered before closing it (within DEADLINE + MARGIN)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def trickle() -> None:
        try:
            writer.write(send)
            while every is not None:
                await asyncio.sleep(every)
                writer.write(b"X-Slow: still coming\r\n")
                await writer.drain()
        except (ConnectionError, RuntimeError):
            pass  # closed by the server

    task = asyncio.create_task(trickle())
    try:
        return await read_until_closed(reader, DEADLINE + MARGIN)
    finally:
        task.cancel()
        writer.close()


async def test_idle_and_slow_heads_are_closed_within_the_deadline(limited: ThreadServer) -> None:
    port = limited.port
    head = b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n"
    answers = await asyncio.gather(
        *(closed_after(port) for _ in range(3)),  # connect, send nothing
        closed_after(port, b"GE"),  # half a request line
        *(closed_after(port, head, every=0.25) for _ in range(3)),  # slowloris
    )
    assert answers[:3] == [b""] * 3  # nothing was asked: closed without an answer
    for answer in answers[3:]:
        status, error, headers = error_of(answer)
        assert (status, error["code"], headers["connection"]) == (408, "request_timeout", "close")


async def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline(
    limited: ThreadServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    try:
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.startswith(b"content-length")
        )
        await reader.readexactly(length)
        started = time.monotonic()
        writer.write(b"GET /v1/health HTTP/1.1\r\n")  # and then not the rest
        rest = await read_until_closed(reader, DEADLINE + MARGIN)
        assert error_of(rest)[1]["code"] == "request_timeout"
        assert time.monotonic() - started < DEADLINE + MARGIN
    finally:
        writer.close()


async def test_ordinary_requests_and_long_streams_are_not_cut(limited: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=limited.url, timeout=30) as client:
        # A stream lasting twice the head deadline runs to its end.
        body = {"messages": user("slow 8 250")}
        async with client.stream("POST", "/v1/response", json=body) as response:
            frames = [frame async for frame in sse_frames(response)]
        assert frames[-1].event == "complete"
        assert frames[-1].data["data"]["status"] == "completed"
        # One kept-alive client, pauses shorter than the deadline between its requests.
        for _ in range(3):
            assert (await client.get("/v1/health")).status_code == 200
            await asyncio.sleep(DEADLINE / 2)
    # The deadline is for the head: a body may come later.
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    try:
        payload = json.dumps({"messages": user("late body"), "stream": False}).encode()
        writer.write(
            b"POST /v1/response HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        await asyncio.sleep(DEADLINE * 1.5)
        writer.write(payload)
        answer = await read_until_closed(reader, 30)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b"echo: late body" in answer
    finally:
        writer.close()


async def test_a_head_larger_than_max_head_bytes_gets_431(limited: ThreadServer) -> None:
    start = b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n"
    heads = [
        start + b"X-Big: " + b"a" * 6000 + b"\r\n",  # one large header
        start + b"".join(b"X-H%d: value\r\n" % i for i in range(400)),  # many small ones
        b"GET /v1/health?" + b"q" * 6000 + b" HTTP/1.1\r\nHost: localhost\r\n",  # a long URL
    ]
    for head in heads:
        # whole (refused by the app) and still arriving (refused by the protocol)
        for complete in (b"\r\n", b""):
            answer = await closed_after(limited.port, head + complete)
            status, error, _ = error_of(answer)
            assert (status, error["code"]) == (431, "request_head_too_large"), head[:40]
    async with httpx.AsyncClient(base_url=limited.url, timeout=30) as client:
        assert (await client.get("/v1/health", headers={"X-Ok": "a" * 2000})).status_code == 200


async def test_bad_bytes_after_a_request_do_not_cut_or_corrupt_its_answer(
    limited: ThreadServer,
) -> None:
    """Garbage or an oversized head pipelined behind a good request: the good request is
    answered whole, nothing is mixed into that answer, then the connection closes."""
    good = b"POST /v1/response HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    payload = json.dumps({"messages": user("slow 4 100")}).encode()
    good += b"Content-Length: %d\r\n\r\n" % len(payload) + payload
    for after in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 8000):
        reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
        try:
            writer.write(good + after)
            answer = await read_until_closed(reader, 30)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        first, _, rest = answer.partition(b"event: complete")
        assert b"HTTP/1.1" not in first[8:]  # nothing mixed into the stream
        assert b"HTTP/1.1 200" not in rest


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_connections_beyond_the_cap_get_503_and_a_log_line(
    protocol: str,
    upstream: ScriptedModelServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(upstream.url, tmp_path, head_timeout_seconds=60.0, max_connections=4)
    running = ThreadServer(settings, http=PROTOCOLS[protocol]).start()
    open_connections = running.server.server_state.connections
    held = []
    try:
        for _ in range(4):
            held.append(await asyncio.open_connection("127.0.0.1", running.port))
        async with asyncio.timeout(10):
            while len(open_connections) < 4:
                await asyncio.sleep(0.01)
        with caplog.at_level(logging.WARNING, logger="chat_shell_http"):
            reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            answer = await read_until_closed(reader, 10)
            writer.close()
        status, error, headers = error_of(answer)
        assert (status, error["code"], error["retryable"]) == (503, "too_many_connections", True)
        assert headers["retry-after"] == "1"
        assert any("max_connections is 4" in r.getMessage() for r in caplog.records)
        # One held connection goes: the server answers again.
        held.pop()[1].close()
        async with asyncio.timeout(10):
            while len(open_connections) > 3:
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            assert (await client.get("/v1/health")).status_code == 200
    finally:
        for _, held_writer in held:
            held_writer.close()
        running.stop()


def test_the_cap_stays_below_the_file_descriptor_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:  # counted as a million
        soft = 1 << 20
    assert connection_cap(None) == soft // 2
    assert connection_cap(10) == 10
    assert connection_cap(soft * 4) == soft - 64


async def test_serve_under_a_low_descriptor_limit_refuses_before_it_runs_out(
    tmp_path: Path,
) -> None:
    """With ``ulimit -n 128`` the cap is 64 connections: the 65th gets 503, the server lives."""
    write_config(tmp_path, head_timeout_seconds=60.0)
    command = [
        "sh",
        "-c",
        'ulimit -n 128 && exec "$0" "$@"',
        sys.executable,
        "-m",
        "chat_shell_http",
    ]
    server = ProcessServer(tmp_path, command=command).wait_ready()
    held = []
    try:
        for _ in range(65):
            held.append(await asyncio.open_connection("127.0.0.1", server.port))
        answers = await asyncio.gather(*(answer_soon(reader) for reader, _ in held))
        refused = [error_of(answer) for answer in answers if answer is not None]
        assert refused  # (more than one while an earlier connection is still closing)
        assert {(status, error["code"]) for status, error, _ in refused} == {
            (503, "too_many_connections")
        }
        assert len(held) - len(refused) <= 64
        for _, held_writer in held:
            held_writer.close()
        held = []
        async with asyncio.timeout(10):
            while True:
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                    if (await client.get("/v1/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
    finally:
        for _, held_writer in held:
            held_writer.close()
        log = server.stop()
    assert "max_connections is 64" in log
    assert "Too many open files" not in log


def serve_command() -> list[str]:
    """The real ``chat-shell serve`` console script."""
    return [str(Path(sys.executable).parent / "chat-shell"), "serve"]


@pytest.mark.slow
@pytest.mark.parametrize("way", ["chat-shell serve", "uvicorn --factory --http"])
async def test_every_documented_way_of_starting_applies_the_limits(
    way: str, tmp_path: Path
) -> None:
    write_config(tmp_path, head_timeout_seconds=DEADLINE, max_connections=3)
    if way == "chat-shell serve":
        server = ProcessServer(tmp_path, command=serve_command())
    else:
        server = ProcessServer.uvicorn(tmp_path, "--http", "chat_shell_http:HTTPProtocol")
    server.wait_ready()
    try:
        assert await closed_after(server.port) == b""
        answer = await closed_after(server.port, b"GET /v1/health HTTP/1.1\r\n")
        assert error_of(answer)[1]["code"] == "request_timeout"
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(4)]
        answers = await asyncio.gather(*(answer_soon(reader, DEADLINE / 2) for reader, _ in held))
        refused = [error_of(answer)[0] for answer in answers if answer is not None]
        assert refused
        assert set(refused) == {503}
        assert len(held) - len(refused) <= 3
        for _, held_writer in held:
            held_writer.close()
    finally:
        log = server.stop()
    assert "max_connections is 3" in log
    assert "connection limits are off" not in log


async def test_uvicorn_without_the_protocol_says_the_limits_are_off(tmp_path: Path) -> None:
    write_config(tmp_path)
    server = ProcessServer.uvicorn(tmp_path).wait_ready()
    log = server.stop()
    assert "connection limits are off" in log
    assert "--http chat_shell_http:HTTPProtocol" in log
