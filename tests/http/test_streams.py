"""Stream mechanics: slow clients are cut (and can resume), nothing is left behind after
disconnects, the serve command is registered."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from chat_shell import AgentRun, EventType, MemoryRunStore, RunManager
from chat_shell_http._runs import RunRecord, RunRegistry
from chat_shell_http._sse import TooFarBehind, _frames, encode_event
from http_support import ThreadServer, sse_frames, user


async def test_a_stream_too_far_behind_is_cut_and_the_run_goes_on() -> None:
    run = AgentRun("s1")
    registry = RunRegistry(RunManager(MemoryRunStore()), max_active=10)
    record = RunRecord(run.summary(), run)
    for i in range(5):
        run.emit(EventType.CONTENT, {"delta": f"{i}"})
    frames = _frames(record, -1, registry, buffer_events=10)
    first = await anext(frames)
    assert first.count(b"event: content") == 5
    for i in range(50):  # the client is slow: 50 events arrive before it asks again
        run.emit(EventType.CONTENT, {"delta": f"{i}"})
    with pytest.raises(TooFarBehind):  # cut (the connection closed): it resumes from seq 4
        [chunk async for chunk in frames]
    assert registry.streams == 0
    assert registry.watchers[run.id] == 0
    assert len(run.events) == 55  # the run lost nothing


def test_frames_are_sse() -> None:
    run = AgentRun("s1", "run_x")
    event = run.emit(EventType.CONTENT, {"delta": 'a "b"\nc'})
    frame = encode_event(event).decode()
    lines = frame.split("\n")
    assert lines[0] == "event: content"
    assert lines[1] == "id: 0"
    assert lines[2].startswith("data: {")
    assert frame.endswith("\n\n")
    assert frame.count("\n") == 4  # the JSON never spans lines


async def test_no_task_or_stream_left_after_disconnects(server: ThreadServer) -> None:
    async def tasks() -> int:
        return len(asyncio.all_tasks())

    run_ids = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        # Warm-up: the first stream on a loop starts sse-starlette's one shutdown watcher.
        async with client.stream("POST", "/v1/response", json={"messages": user("x")}) as r:
            [f async for f in sse_frames(r)]
        baseline = server.call(tasks())
        for _ in range(30):
            async with client.stream(
                "POST", "/v1/response", json={"messages": user("slow 40 5")}
            ) as response:
                run_ids.append(response.headers["x-subtask-id"])
                async for _ in sse_frames(response):
                    break  # hang up after the first event
        for run_id in run_ids:
            while (await client.get(f"/v1/response/{run_id}")).json()["status"] in (
                "queued",
                "running",
            ):
                await asyncio.sleep(0.02)
    state = server.state
    for _ in range(200):
        # a run's status is final in the store a moment before its holder forgets it
        idle = state.runs.streams == 0 and state.runs.active_count == 0
        if idle and server.call(tasks()) <= baseline:
            break
        await asyncio.sleep(0.05)
    assert state.runs.streams == 0
    assert state.runs.active_count == 0
    assert server.call(tasks()) <= baseline
    for run_id in run_ids:
        record = server.call(
            state.runs.get(run_id, __import__("chat_shell_http").Principal(owner=None))
        )
        assert state.runs.watchers[run_id] == 0
        assert record.info.status == "completed"


async def test_keepalive_comments(upstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from http_support import make_settings

    settings = make_settings(upstream.url, tmp_path, keepalive_seconds=0.2)
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            comments: list[str] = []
            async with client.stream(
                "POST", "/v1/response", json={"messages": user("slow 3 400")}
            ) as response:
                events = [f async for f in sse_frames(response, comments)]
            assert events[-1].event == "complete"
            assert "keepalive" in comments
    finally:
        running.stop()


def test_serve_command_is_registered() -> None:
    from importlib.metadata import entry_points

    import typer
    from typer.testing import CliRunner

    (entry,) = [ep for ep in entry_points(group="chat_shell.commands") if ep.name == "serve"]
    app = typer.Typer()
    entry.load()(app)

    @app.callback()
    def root() -> None:
        """test root"""

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--api-key", "--insecure-no-auth", "--storage"):
        assert option in result.output


def test_serve_refuses_a_public_address_without_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "chat_shell_http", "--host", "0.0.0.0", "--port", "1"],
        env={**os.environ, "CHAT_SHELL_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "without API keys" in result.stderr
