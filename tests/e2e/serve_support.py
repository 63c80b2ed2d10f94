"""Helpers of the end-to-end tests: a home of its own for the real ``chat-shell`` console script
(``write_home``, ``script_env``), the script run once (``run_cli``) or as a `chat-shell serve`
process (``Serve``), and the SSE frames such a server sends (``sse_data``, ``sse_numbered``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

BIN = Path(sys.executable).parent
SCRIPT = BIN / "chat-shell"
MODEL = "openai/scripted"
PATIENCE = 60.0  # longest a process is waited for (to start, to stop, to answer)

# The real MCP time server (its tools need approval by default), and a call of one of its tools.
TIME_SERVER = BIN / "mcp-server-time"
TIME_TOML = f"""
[mcp_servers.time]
command = "{TIME_SERVER}"
args = ["--local-timezone", "UTC"]
"""
ASK_TIME = 'call time_get_current_time {"timezone": "Asia/Tokyo"}'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user(text: str) -> list[dict[str, str]]:
    """``messages`` of one user message."""
    return [{"role": "user", "content": text}]


def write_home(
    home: Path,
    upstream_url: str,
    *,
    settings: str = "",
    tables: str = "",
    api_key: str | None = None,
) -> Path:
    """``home`` (mode 0700, made if missing) with a ``config.toml`` on the scripted model at
    ``upstream_url`` without retries: ``settings`` are top-level lines (before the model's
    table), ``tables`` come after it, ``api_key`` is the model's key. Returns ``home``."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = f'api_key = "{api_key}"\n' if api_key is not None else ""
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\nretries = 0\n{settings}'
        f'[models."{MODEL}"]\napi_base = "{upstream_url}"\n{key}{tables}'
    )
    return home


def script_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a console script on ``home``: this process's, without any
    ``CHAT_SHELL_*`` or ``OPENAI_*`` variable, then ``CHAT_SHELL_HOME``, ``NO_COLOR=1`` and
    ``extra``."""
    values = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHAT_SHELL_", "OPENAI_"))
    }
    return {**values, "CHAT_SHELL_HOME": str(home), "NO_COLOR": "1", **extra}


def postgres_env(
    home: Path, upstream_url: str, storage_url: str, settings: str = ""
) -> dict[str, str]:
    """``script_env`` of a home on the scripted model and on the PostgreSQL at ``storage_url``
    (``settings``: more top-level lines of its config)."""
    write_home(home, upstream_url, settings=f'storage = "postgres"\n{settings}')
    return script_env(home, CHAT_SHELL_STORAGE_URL=storage_url)


def run_cli(
    env: dict[str, str], *args: str, input: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``chat-shell ARGS`` with ``env``, ``input`` on its stdin; its exit code and output."""
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Serve:
    """``chat-shell serve --port PORT ARGS`` in a subprocess with ``env``, answering
    ``/v1/health`` with 200 when the constructor returns. Its output (stdout and stderr) goes to
    ``serve-PORT.log`` in its home (``CHAT_SHELL_HOME``) and is shown when it fails to start or
    to stop. As a context manager, it is stopped at the end of the block."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(env["CHAT_SHELL_HOME"]) / f"serve-{self.port}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(self.port), *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + PATIENCE
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"chat-shell serve exited: {self.stop()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"chat-shell serve did not start: {self.kill()}")
            time.sleep(0.05)

    def log(self) -> str:
        """What the server has written so far."""
        return self.log_path.read_text()

    def stop(self) -> str:
        """SIGTERM, and wait for its end (a server still running after ``PATIENCE`` is killed
        and fails the test); its output."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(PATIENCE)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"chat-shell serve did not stop: {self.kill()}") from None
        self._log.close()
        return self.log()

    def kill(self) -> str:
        """SIGKILL (``kill -9``), and wait for its end; its output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(PATIENCE)
        self._log.close()
        return self.log()

    def __enter__(self) -> Serve:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def sse_data(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON ``data:`` of each SSE frame in ``lines`` (``response.iter_lines()``); a blank
    line ends a frame."""
    data: list[str] = []
    for line in lines:
        if line == "" and data:
            yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def sse_numbered(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(seq, event) of each SSE frame in ``lines`` that carries an ``id:`` (its seq)."""
    seq: int | None = None
    for line in lines:
        if line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("data:") and seq is not None:
            yield seq, json.loads(line[5:])
            seq = None


def start_run(url: str, session: str) -> str:
    """A streamed run on ``session`` of the server at ``url``, left running (its stream is
    closed at its first event); its run id."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{url}/v1/response",
            json={"messages": user("count slowly"), "session_id": session},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        run_id = response.headers["X-Subtask-Id"]
        next(sse_numbered(response.iter_lines()))
    return run_id
