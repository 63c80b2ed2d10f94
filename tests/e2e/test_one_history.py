"""The three modes share one history: a session started in the CLI is read over HTTP and with
``get_history()``, and a turn added over HTTP shows in ``chat-shell history show``.

Runs the real console script and a real `chat-shell serve` process on one SQLite file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell import DirectChatInterface, InterfaceConfig
from chat_shell.testing import ScriptedModelServer

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")

SCRIPT = Path(sys.executable).with_name("chat-shell")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, upstream: ScriptedModelServer) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(
        'model = "openai/scripted"\nretries = 0\n'
        f'[models."openai/scripted"]\napi_base = "{upstream.url}"\n'
    )
    return {**os.environ, "CHAT_SHELL_HOME": str(home), "NO_COLOR": "1"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"chat-shell serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("chat-shell serve did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        process.stderr.close()  # type: ignore[union-attr]


@pytest.mark.slow
async def test_cli_http_and_library_share_one_history(env: dict[str, str], server: str) -> None:
    started = cli(env, "query", "--json", "hello from the terminal")
    assert started.returncode == 0, started.stderr
    output = json.loads(started.stdout)
    assert output["content"] == "echo: hello from the terminal"
    session = output["session_id"]

    over_http = httpx.get(f"{server}/v1/sessions/{session}/history", timeout=10)
    assert over_http.status_code == 200
    messages = over_http.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "hello from the terminal"),
        ("assistant", "echo: hello from the terminal"),
    ]

    reply = httpx.post(
        f"{server}/v1/response",
        json={
            "session_id": session,
            "stream": False,
            "messages": [{"role": "user", "content": "hello from the web"}],
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"] == "echo: hello from the web"

    database = Path(env["CHAT_SHELL_HOME"]) / "history.db"
    config = InterfaceConfig(storage="sqlite", storage_options={"path": str(database)})
    async with DirectChatInterface(config) as chat:
        history = await chat.get_history(session)
    assert [m.content for m in history] == [
        "hello from the terminal",
        "echo: hello from the terminal",
        "hello from the web",
        "echo: hello from the web",
    ]

    shown = cli(env, "history", "show", session, "--json")
    assert shown.returncode == 0, shown.stderr
    assert "echo: hello from the web" in json.dumps(json.loads(shown.stdout))
