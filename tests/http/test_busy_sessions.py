"""A session with a run in progress on the server cannot be deleted or cleared: over HTTP, over
the remote-storage protocol, and by the real `chat-shell history delete` on the server's
storage (a separate process)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
from http_support import ThreadServer, sse_frames, user

SCRIPT = Path(sys.executable).with_name("chat-shell")


def cli(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_SHELL_")}
    env.update(CHAT_SHELL_HOME=str(home), CHAT_SHELL_STORAGE="remote", CHAT_SHELL_STORAGE_URL=url)
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_a_busy_session_is_not_deleted_by_anyone(
    server: ThreadServer, tmp_path: Path
) -> None:
    session = "busy-delete"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        body = {"messages": user("slow 600 20"), "session_id": session}
        async with client.stream("POST", "/v1/response", json=body) as response:
            run_id = response.headers["x-run-id"]
            async for _ in sse_frames(response):
                break  # the run goes on
        refused = await client.delete(f"/v1/sessions/{session}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "session_busy"
        assert refused.json()["error"]["run_id"] == run_id
        cleared = await client.delete(f"/api/v1/sessions/{session}/messages")
        assert cleared.status_code == 409
        done = await asyncio.to_thread(
            cli, tmp_path, server.url, "history", "delete", session, "--yes"
        )
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert "run in progress" in line
        history = (await client.get(f"/v1/sessions/{session}/history")).json()["messages"]
        assert history[0]["content"] == "slow 600 20"
        await client.delete(f"/v1/response/{run_id}")
        done = await asyncio.to_thread(
            cli, tmp_path, server.url, "history", "delete", session, "--yes"
        )
        assert done.returncode == 0, done.stderr
        assert (await client.get(f"/v1/sessions/{session}/history")).status_code == 404
