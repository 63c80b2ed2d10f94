"""``chat-shell serve`` as a user starts and stops it: the real console script in a subprocess.

Start-up says in one line when the model has no credentials; a taken port is one line and exit
2; SIGTERM is a normal stop (exit 0), Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import free_port

SCRIPT = Path(sys.executable).with_name("chat-shell")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user's environment with no model credentials at all, and a fresh home."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    values = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHAT_SHELL_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))
    }
    return {**values, "CHAT_SHELL_HOME": str(home), "CHAT_SHELL_STORAGE": "memory"}


class Serve:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(self.port), "--log-level", "warning", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> Serve:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.process.communicate()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("chat-shell serve did not start")

    def stop(self, sig: int) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, stderr = self.process.communicate(timeout=30)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


class StartServe(Protocol):
    """The ``serve`` fixture: starts ``chat-shell serve`` with the test's environment."""

    def __call__(self, *args: str, extra_env: dict[str, str] | None = None) -> Serve: ...


@pytest.fixture
def serve(env: dict[str, str]) -> Iterator[StartServe]:
    started: list[Serve] = []

    class Started(Serve):
        def __init__(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
            super().__init__({**env, **(extra_env or {})}, *args)
            started.append(self)

    yield Started
    for each in started:
        each.kill()


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line]


def test_sigterm_is_a_clean_stop(serve: StartServe) -> None:
    running = serve(extra_env={"OPENAI_API_KEY": "sk-test-key-123456"}).wait_ready()
    code, stderr = running.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "ERROR" not in stderr


def test_ctrl_c_exits_130(serve: StartServe) -> None:
    running = serve(extra_env={"OPENAI_API_KEY": "sk-test-key-123456"}).wait_ready()
    code, stderr = running.stop(signal.SIGINT)
    assert code == 130, stderr
    assert "Traceback" not in stderr


def test_start_up_says_when_the_model_has_no_credentials(serve: StartServe) -> None:
    running = serve().wait_ready()
    _, stderr = running.stop(signal.SIGTERM)
    (line,) = warnings_in(stderr)
    assert line.startswith("chat-shell serve: warning: no API key for openai/gpt-4o-mini")
    assert "OPENAI_API_KEY" in line  # how to set them
    assert "OPENAI_BASE_URL" in line  # or a local server
    assert "400" in line


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-2.0-flash", "GEMINI_API_KEY"),
    ],
)
def test_the_warning_names_the_configured_model(
    serve: StartServe, model: str, variable: str
) -> None:
    running = serve(extra_env={"CHAT_SHELL_MODEL": model}).wait_ready()
    _, stderr = running.stop(signal.SIGTERM)
    (line,) = warnings_in(stderr)
    assert f"no API key for {model}" in line
    assert variable in line


def test_no_warning_when_the_model_can_be_called(serve: StartServe) -> None:
    with ScriptedModelServer() as upstream:
        running = serve(extra_env={"OPENAI_BASE_URL": upstream.url}).wait_ready()
        reply = httpx.post(
            f"{running.url}/v1/response",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": False},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        _, stderr = running.stop(signal.SIGTERM)
    assert warnings_in(stderr) == []


def _occupied(kind: str) -> socket.socket:
    occupant = socket.socket()
    occupant.bind(("127.0.0.1", 0))
    if kind == "listening":
        occupant.listen()
    return occupant


@pytest.mark.parametrize("kind", ["listening", "bound"])
def test_a_port_in_use_is_one_line_and_exit_2(env: dict[str, str], kind: str) -> None:
    with _occupied(kind) as occupant:
        port = occupant.getsockname()[1]
        result = subprocess.run(
            [str(SCRIPT), "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"chat-shell serve: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another server?): choose another with --port"
    ]
    assert result.stdout == ""


def test_an_address_of_another_machine_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    # 192.0.2.1 is TEST-NET-1: no interface of this machine has it, and binding sends nothing
    result = subprocess.run(
        [str(SCRIPT), "serve", "--host", "192.0.2.1", "--port", "8000", "--insecure-no-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "chat-shell serve: cannot listen on 192.0.2.1:8000: that address is not one of this "
        "machine's: choose another --host"
    ]


def test_port_0_serves_on_the_port_it_says(env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", "0", "--log-level", "warning"],
        env={**env, "OPENAI_API_KEY": "sk-test-key-123456"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert banner.startswith("chat-shell serve: http://127.0.0.1:")
        port = int(banner.split("http://127.0.0.1:")[1].split(" ")[0])
        assert port > 0
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "not serving on the port it named"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stderr.close()  # type: ignore[union-attr]


def test_the_cli_reference_shows_the_real_serve_help() -> None:
    """docs/cli.md's reference has `chat-shell serve --help` as it is (tests/cli/cli_docs.py)."""
    cli_docs = Path(__file__).resolve().parents[1] / "cli" / "cli_docs.py"
    result = subprocess.run(
        [sys.executable, str(cli_docs), "--check", "serve"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
