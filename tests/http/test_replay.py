"""Replay and slow clients: a finished run replays whole from seq 0 whatever its length (the
"too far behind" cut is for live streams only), and a client that stops reading a live stream
has its connection closed, its socket and send queue released, while the run goes on."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from http_support import ThreadServer, make_settings, responder, sse_frames, user


def big_responder(request: dict[str, Any]) -> Reply:
    """``big N MS``: N chunks of 20 kB, MS ms apart (enough to fill any socket buffer)."""
    content = str((request.get("messages") or [{}])[-1].get("content") or "")
    if match := re.fullmatch(r"big (\d+) (\d+)", content):
        chunk = "x" * 20_000
        count, delay = int(match.group(1)), int(match.group(2)) / 1000
        return Reply(chunks=[chunk] * count, delay=delay)
    return responder(request)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=big_responder) as server:
        yield server


@pytest.fixture(scope="module")
def tight(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    """A server whose live streams may fall only 100 events behind, cut after 1 s unread."""
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("tight"),
        rate_limit_per_minute=0,
        client_buffer_events=100,
        send_timeout_seconds=1.0,
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


async def test_a_finished_run_of_5000_events_replays_whole(tight: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=tight.url, timeout=60) as client:
        done = await client.post(
            "/v1/response", json={"messages": user("tokens 5000"), "stream": False}
        )
        assert done.status_code == 200
        body = done.json()
        assert body["status"] == "completed"
        assert body["run_id"] == body["subtask_id"]
        last = body["last_seq"]
        assert last >= 5000
        for query in ("", "&after=-1"):
            async with client.stream(
                "GET", f"/v1/response/{body['run_id']}?stream=true{query}"
            ) as response:
                frames = []
                async for frame in sse_frames(response):
                    frames.append(frame)
                    if len(frames) % 1000 == 0:
                        await asyncio.sleep(0.2)  # a slow reader: the replay waits for it
            assert [f.id for f in frames] == list(range(last + 1))
            assert frames[-1].event == "complete"
            assert all(f.data["run_id"] == body["run_id"] for f in frames)
        async with client.stream(
            "GET",
            f"/v1/response/{body['run_id']}",
            headers={"Accept": "text/event-stream", "Last-Event-ID": "4990"},
        ) as response:
            rest = [frame.id async for frame in sse_frames(response)]
        assert rest == list(range(4991, last + 1))  # fmt: skip


def _unread_stream(url: str, run_id: str) -> socket.socket:
    """A connection asking for a live stream, with a tiny receive window, never read."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /v1/response/{run_id}?stream=true HTTP/1.1\r\nHost: {host}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def _ended(sock: socket.socket) -> bool:
    """Read what is there; whether the server has closed the connection."""
    sock.settimeout(0.2)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


async def test_a_client_that_stops_reading_is_disconnected(tight: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=tight.url, timeout=60) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("big 600 20")}
        ) as response:
            run_id = response.headers["x-run-id"]
            async for _ in sse_frames(response):
                break  # detached: the run goes on
        sock = _unread_stream(tight.url, run_id)
        try:
            watchers = tight.state.runs.watchers
            deadline = time.monotonic() + 30
            while watchers[run_id] == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert watchers[run_id] == 1
            # wait (not read) until the server gives up on it, then look at the socket
            while watchers[run_id] and time.monotonic() < deadline + 30:
                await asyncio.sleep(0.1)
            assert watchers[run_id] == 0
            assert await asyncio.to_thread(_ended_eventually, sock)
        finally:
            sock.close()
        status = (await client.get(f"/v1/response/{run_id}")).json()
        assert status["status"] == "running"  # the stream was cut, not finished
        await client.delete(f"/v1/response/{run_id}")


def _ended_eventually(sock: socket.socket) -> bool:
    return any(_ended(sock) for _ in range(100))


def test_the_cut_applies_to_live_streams_only(tmp_path: Path) -> None:
    """A stream of a finished run is never cut however far the reader is behind (the server's
    own frames function, without sockets)."""
    from chat_shell import AgentRun, EventType, MemoryRunStore, RunManager
    from chat_shell_http._runs import RunRecord, RunRegistry
    from chat_shell_http._sse import _frames

    async def main() -> int:
        run = AgentRun("s1")
        for i in range(3000):
            run.emit(EventType.CONTENT, {"delta": f"{i}"})
        run.emit(EventType.COMPLETE, {"status": "completed"})
        run.finish("completed")
        registry = RunRegistry(RunManager(MemoryRunStore()), max_active=10)
        frames = _frames(RunRecord(run.summary(), run), -1, registry, buffer_events=10)
        return sum([chunk.count(b"\nid: ") async for chunk in frames])

    assert asyncio.run(main()) == 3001
