"""Runs that outlive their process, on one SQLite file shared by real processes.

``kill -9`` of a real ``chat-shell serve`` mid-stream, then a restart on the same file: the run
is ``interrupted``, its status and whole replay answer, the part streamed before the kill is in
the history marked interrupted, and the next turn sends the model a valid conversation. The CLI
and a server on one session: one of them is refused, never interleaved.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import Reply, ScriptedModelServer, default_responder
from serve_support import SCRIPT, Serve, run_cli, script_env, sse_data, write_home

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")
pytest.importorskip("chat_shell_sqlite")

# run_lease_seconds: short, so a dead server's run lapses soon; not the shortest allowed (2 s):
# a CLI process busy importing its model client on a loaded machine may miss a 2 s renewal.
LEASE = 6
PATIENCE = 60.0  # longest a test waits for something (never a timing assertion)


def responder(request: dict[str, Any]) -> Reply:
    """``slow N MS``: N tokens, MS ms apart; anything else: the default answer."""
    content = str((request.get("messages") or [{}])[-1].get("content") or "").strip()
    if match := re.fullmatch(r"slow (\d+) (\d+)", content):
        return Reply.tokens(int(match.group(1)), delay=int(match.group(2)) / 1000)
    return default_responder(request)


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=responder) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, upstream: ScriptedModelServer) -> dict[str, str]:
    settings = f"run_lease_seconds = {LEASE}\n"
    return script_env(
        write_home(tmp_path / "home", upstream.url, settings=settings, api_key="sk-test-up")
    )


def serve(env: dict[str, str]) -> Serve:
    """A real ``chat-shell serve`` (the history and runs in the home's history.db)."""
    return Serve(env, "--log-level", "warning")


@pytest.fixture
def servers(env: dict[str, str]) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for server in started:
        server.kill()


def streamed_until(url: str, body: dict[str, Any], count: int) -> tuple[str, str]:
    """Start a run, read ``count`` content events; its id and the text they carried."""
    text = []
    with httpx.stream("POST", f"{url}/v1/response", json=body, timeout=PATIENCE) as response:
        assert response.status_code == 200
        run_id = response.headers["x-run-id"]
        for frame in sse_data(response.iter_lines()):
            if frame["event_type"] == "content":
                text.append(frame["data"]["delta"])
                if len(text) == count:
                    break
    return run_id, "".join(text)


def until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def roles(request: dict[str, Any]) -> list[str]:
    return [message["role"] for message in request["messages"] if message["role"] != "system"]


def test_a_killed_server_s_runs_are_interrupted_kept_and_replayed_10_times(
    env: dict[str, str], upstream: ScriptedModelServer, servers: list[Serve]
) -> None:
    servers.append(serve(env))
    for round_ in range(10):
        session = f"crash-{round_}"
        body = {"messages": [{"role": "user", "content": "slow 2000 5"}], "session_id": session}
        run_id, seen = streamed_until(servers[-1].url, body, 20 + 7 * round_)
        time.sleep(0.2)  # past a flush (every 50 ms): what a client saw is in the file
        servers[-1].kill()
        servers.append(serve(env))
        url = servers[-1].url

        def ended(run_id: str = run_id, url: str = url) -> dict[str, Any] | None:
            status = httpx.get(f"{url}/v1/response/{run_id}", timeout=PATIENCE)
            assert status.status_code == 200, status.text
            info: dict[str, Any] = status.json()
            return info if info["status"] == "interrupted" else None

        info = until(ended, f"run {run_id} interrupted after the kill")
        assert info["content"].startswith(seen)  # nothing a client saw was lost
        with httpx.stream(
            "GET", f"{url}/v1/response/{run_id}?stream=true", timeout=PATIENCE
        ) as replay:
            assert replay.status_code == 200
            events = list(sse_data(replay.iter_lines()))
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert events[-1]["event_type"] == "complete"
        assert events[-1]["data"]["status"] == "interrupted"
        replayed = "".join(e["data"]["delta"] for e in events if e["event_type"] == "content")
        assert replayed == info["content"]

        history = httpx.get(f"{url}/v1/sessions/{session}/history", timeout=PATIENCE).json()
        messages = history["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["metadata"]["status"] == "interrupted"
        assert messages[1]["content"] == info["content"]

        asked = len(upstream.requests)
        answer = httpx.post(
            f"{url}/v1/response",
            json={"messages": [{"role": "user", "content": "hello"}], "session_id": session,
                  "stream": False},
            timeout=PATIENCE,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed"
        sent = upstream.requests[asked:]
        assert len(sent) == 1
        assert roles(sent[0]) == ["user", "assistant", "user"]


def test_the_cli_and_a_server_never_interleave_a_session(
    env: dict[str, str], upstream: ScriptedModelServer, servers: list[Serve]
) -> None:
    servers.append(serve(env))
    url = servers[0].url
    assert run_cli(env, "query", "--session", "shared", "first").returncode == 0
    body = {"messages": [{"role": "user", "content": "slow 1500 10"}], "session_id": "shared"}
    with httpx.stream("POST", f"{url}/v1/response", json=body, timeout=PATIENCE) as response:
        assert response.status_code == 200
        run_id = response.headers["x-run-id"]
        stream = sse_data(response.iter_lines())
        next(stream)  # the run is under way

        busy = run_cli(env, "query", "--session", "shared", "second")
        assert busy.returncode == 2
        assert busy.stdout == ""
        [line] = busy.stderr.strip().splitlines()
        assert "session shared is busy" in line
        assert run_id in line
        assert "--wait" in line

        refused = run_cli(env, "history", "delete", "shared", "--yes")
        assert refused.returncode != 0
        [line] = refused.stderr.strip().splitlines()
        assert "run in progress" in line

        waiting = subprocess.Popen(
            [str(SCRIPT), "query", "--session", "shared", "--wait", "third"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        last = list(stream)[-1]
        assert last["event_type"] == "complete"
        assert last["data"]["status"] == "completed"
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert out.strip()
    assert "waiting for its end" in err

    history = httpx.get(f"{url}/v1/sessions/shared/history", timeout=PATIENCE).json()
    said = [(m["role"], m["content"]) for m in history["messages"]]
    assert [role for role, _ in said] == ["user", "assistant"] * 3
    assert [content for role, content in said if role == "user"] == [
        "first",
        "slow 1500 10",
        "third",
    ]
    for request in upstream.requests:
        sent = roles(request)
        assert ("user", "user") not in set(itertools.pairwise(sent))

    # and the other way round: a server turn on a session a CLI turn holds is a 409
    holder = subprocess.Popen(
        [str(SCRIPT), "query", "--session", "cli-held", "slow 1500 10"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.read(3)  # its answer is streaming
        second = httpx.post(
            f"{url}/v1/response",
            json={"messages": [{"role": "user", "content": "hi"}], "session_id": "cli-held",
                  "stream": False},
            timeout=PATIENCE,
        )  # fmt: skip
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "session_busy"
        deleted = httpx.delete(f"{url}/v1/sessions/cli-held", timeout=PATIENCE)
        assert deleted.status_code == 409
    finally:
        holder.communicate(timeout=120)
    assert holder.returncode == 0
    history = httpx.get(f"{url}/v1/sessions/cli-held/history", timeout=PATIENCE).json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
