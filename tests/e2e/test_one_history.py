"""The three modes share one history: a session started in the CLI is read over HTTP and with
``get_history()``, and a turn added over HTTP shows in ``chat-shell history show``.

Runs the real console script and a real `chat-shell serve` process on one SQLite file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell import DirectChatInterface, InterfaceConfig
from chat_shell.testing import ScriptedModelServer
from serve_support import Serve, run_cli, script_env, write_home

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, upstream: ScriptedModelServer) -> dict[str, str]:
    return script_env(write_home(tmp_path / "home", upstream.url))


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    with Serve(env) as serve:
        yield serve.url


@pytest.mark.slow
async def test_cli_http_and_library_share_one_history(env: dict[str, str], server: str) -> None:
    started = run_cli(env, "query", "--json", "hello from the terminal")
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

    shown = run_cli(env, "history", "show", session, "--json")
    assert shown.returncode == 0, shown.stderr
    assert "echo: hello from the web" in json.dumps(json.loads(shown.stdout))
