"""SIGTERM to a real ``chat-shell serve``: new runs are refused (503 ``shutting_down``), runs in
progress finish within the grace period or are cancelled and stored, every SSE watcher gets its
final ``complete``, ``stream: false`` waiters get their JSON answer, and the exit code is 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import free_port, responder, sse_frames, user, write_config

SCRIPT = Path(sys.executable).with_name("chat-shell")


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=responder) as server:
        yield server


class Serve:
    def __init__(self, home: Path) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CHAT_SHELL_", "OPENAI_"))
        }
        env.update(CHAT_SHELL_HOME=str(home), CHAT_SHELL_STORAGE="memory")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(self.port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.process.communicate()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("chat-shell serve did not start")

    def finish(self) -> tuple[int, str]:
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


@pytest.fixture
def start(upstream: ScriptedModelServer, tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def make(**server: Any) -> Serve:
        home = tmp_path / f"home{len(started)}"
        write_config(home, upstream.url, rate_limit_per_minute=0, **server)
        running = Serve(home)
        started.append(running)
        return running

    yield make
    for running in started:
        running.kill()


async def watch(client: httpx.AsyncClient, body: dict[str, Any], seen: asyncio.Event) -> list[Any]:
    """Start a run and read its stream to the end; ``seen`` is set at its first event."""
    frames = []
    async with client.stream("POST", "/v1/response", json=body) as response:
        assert response.status_code == 200
        async for frame in sse_frames(response):
            frames.append(frame)
            seen.set()
    return frames


async def refused_after_signal(client: httpx.AsyncClient) -> httpx.Response:
    """Ask for new runs until one is refused (the signal is handled between two of them)."""
    for _ in range(1000):
        response = await client.post(
            "/v1/response", json={"messages": user("hello"), "stream": False}
        )
        if response.status_code == 503:
            return response
        assert response.status_code == 200
    raise AssertionError("new runs were never refused")


async def test_runs_past_the_grace_period_are_cancelled_and_everyone_gets_the_end(
    start: Any,
) -> None:
    running = start(shutdown_grace_seconds=2)
    long_run = {"messages": user("slow 2000 10")}  # 20 s: far past the grace period
    async with httpx.AsyncClient(base_url=running.url, timeout=60) as client:
        seen = [asyncio.Event() for _ in range(3)]
        watchers = [
            asyncio.create_task(watch(client, {**long_run, "session_id": f"w{n}"}, seen[n]))
            for n in range(2)
        ]
        # a detached run: its client leaves at the first event; someone re-attaches later
        detached: list[str] = []
        async with client.stream("POST", "/v1/response", json=long_run) as response:
            detached.append(response.headers["x-run-id"])
            async for _ in sse_frames(response):
                break
        waiter = asyncio.create_task(
            client.post("/v1/response", json={**long_run, "stream": False, "session_id": "q"})
        )
        for event in seen[:2]:
            await asyncio.wait_for(event.wait(), 30)
        reattached = asyncio.create_task(
            _collect(client, f"/v1/response/{detached[0]}?stream=true")
        )
        await asyncio.sleep(0.2)  # the waiter's and the re-attached stream's requests are in

        running.process.send_signal(signal.SIGTERM)
        refused = await refused_after_signal(client)
        assert refused.json()["error"]["code"] == "shutting_down"
        assert refused.json()["error"]["retryable"] is True
        assert int(refused.headers["retry-after"]) >= 1

        for frames in await asyncio.wait_for(asyncio.gather(*watchers), 60):
            assert frames[-1].event == "complete"
            assert frames[-1].data["data"]["status"] == "cancelled"
            assert [f.id for f in frames] == list(range(len(frames)))
        answer = await asyncio.wait_for(waiter, 60)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["status"] == "cancelled"
        assert answer.json()["content"]  # the partial answer
        frames = await asyncio.wait_for(reattached, 60)
        assert frames[-1].data["data"]["status"] == "cancelled"
    code, stderr = running.finish()
    assert code == 0, stderr
    assert "Traceback" not in stderr


async def _collect(client: httpx.AsyncClient, url: str) -> list[Any]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        return [frame async for frame in sse_frames(response)]


async def test_runs_within_the_grace_period_finish(start: Any) -> None:
    running = start(shutdown_grace_seconds=60)
    async with httpx.AsyncClient(base_url=running.url, timeout=60) as client:
        seen = asyncio.Event()
        watcher = asyncio.create_task(
            watch(client, {"messages": user("slow 30 50"), "session_id": "w"}, seen)
        )
        await asyncio.wait_for(seen.wait(), 30)
        running.process.send_signal(signal.SIGTERM)
        refused = await refused_after_signal(client)
        assert refused.json()["error"]["code"] == "shutting_down"
        frames = await asyncio.wait_for(watcher, 60)
        assert frames[-1].data["data"]["status"] == "completed"
        assert frames[-1].data["data"]["content"].count("t") == 30
    code, stderr = running.finish()
    assert code == 0, stderr
    assert "Traceback" not in stderr
