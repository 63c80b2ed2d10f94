"""`chat-shell serve --workers 2` on PostgreSQL with 200 paced streams at once, as real
processes: every run completes, and its status and its resume with `Last-Event-ID` are answered
whichever worker the request reaches. Each request goes on a new connection, so the kernel
spreads them over both workers: most runs are asked about through the worker that does not run
them (their events then come from the database and `LISTEN/NOTIFY`)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from serve_support import Serve, postgres_env, user

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")
pytest.importorskip("chat_shell_postgres")

STREAMS = 200
TOKENS = 20
EXPECTED = "".join(f"t{n} " for n in range(TOKENS))
CLOSE = {"Connection": "close"}


@pytest.fixture
def paced() -> Iterator[ScriptedModelServer]:
    def responder(request: dict[str, object]) -> Reply:
        return Reply.tokens(TOKENS, delay=0.1)  # a run of about 2 s

    with ScriptedModelServer(responder=responder) as server:
        yield server


async def frames(response: httpx.Response) -> list[tuple[int, dict[str, object]]]:
    """(seq, event) of each SSE frame of ``response``, to its end."""
    out: list[tuple[int, dict[str, object]]] = []
    seq: int | None = None
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("data:") and seq is not None:
            out.append((seq, json.loads(line[5:])))
            seq = None
    return out


async def one_stream(client: httpx.AsyncClient, n: int) -> None:
    session = f"paced-{n}"
    # start the run; leave its stream at the first event (the run goes on without it)
    async with client.stream(
        "POST",
        "/v1/response",
        json={"messages": user(f"question {n}"), "session_id": session},
        headers=CLOSE,
    ) as response:
        assert response.status_code == 200, await response.aread()
        run_id = response.headers["X-Subtask-Id"]
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break
    # status, from whichever worker
    status = await client.get(f"/v1/response/{run_id}", headers=CLOSE)
    assert status.status_code == 200, status.text
    assert status.json()["status"] in ("queued", "running", "completed")
    # resume after the first event, from whichever worker: the rest, each event once
    async with client.stream(
        "GET",
        f"/v1/response/{run_id}",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "0", **CLOSE},
    ) as response:
        assert response.status_code == 200, await response.aread()
        events = await frames(response)
    seqs = [seq for seq, _event in events]
    assert seqs == list(range(1, len(seqs) + 1)), (run_id, seqs)
    last = events[-1][1]
    assert last["event_type"] == "complete", (run_id, last)
    assert last["data"]["status"] == "completed", (run_id, last)  # type: ignore[index]
    assert last["data"]["content"] == EXPECTED  # type: ignore[index]
    # the other worker's status reads the database, which may be one flush (50 ms) behind the
    # stream served from the running worker's memory: asked until it has caught up
    for _ in range(500):
        final = (await client.get(f"/v1/response/{run_id}", headers=CLOSE)).json()
        if final["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.02)
    assert final["status"] == "completed", (run_id, final)
    assert final["last_seq"] == seqs[-1]
    assert final["content"] == EXPECTED
    history = await client.get(f"/v1/sessions/{session}/history", headers=CLOSE)
    assert [m["role"] for m in history.json()["messages"]] == ["user", "assistant"]


async def all_streams(url: str) -> None:
    limits = httpx.Limits(max_connections=2 * STREAMS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(*(one_stream(client, n) for n in range(STREAMS)))


@pytest.mark.slow
def test_200_paced_streams_on_two_workers(
    tmp_path: Path, paced: ScriptedModelServer, postgres_url: str
) -> None:
    env = postgres_env(tmp_path / "home", paced.url, postgres_url)
    with Serve(env, "--workers", "2") as server:
        workers = [
            w
            for w in psutil.Process(server.process.pid).children(recursive=True)
            if "spawn_main" in " ".join(w.cmdline())
        ]
        assert len(workers) == 2
        asyncio.run(all_streams(server.url))
        assert len(paced.requests) == STREAMS  # one model call per run: none retried or lost
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
