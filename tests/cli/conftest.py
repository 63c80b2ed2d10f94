"""Run the real ``chat-shell`` console script in a subprocess against a scripted model server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_shell.testing import ScriptedModelServer
from cli_support import SCRIPT, Run


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as scripted:
        yield scripted


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(server: ScriptedModelServer, home: Path) -> dict[str, str]:
    values = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHAT_SHELL_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))
    }
    values.update(
        OPENAI_BASE_URL=server.url,
        OPENAI_API_KEY="sk-test-key-123456",
        CHAT_SHELL_HOME=str(home),
        CHAT_SHELL_NO_PLUGINS="1",
        NO_COLOR="1",
    )
    return values


@pytest.fixture
def cli(env: dict[str, str]) -> Run:
    def run(
        *args: str, input: str = "", extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            input=input,
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            timeout=60,
            check=False,
        )

    return run
