"""Helpers of the HTTP tests: a real uvicorn server on a free port (in a thread or a process),
the scripted upstream's responder, and a small SSE client that parses frames itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from chat_shell import load_settings
from chat_shell.testing import Reply, default_responder

MODEL = "openai/scripted"


def responder(request: dict[str, Any]) -> Reply:
    """The default responder plus ``slow N MS`` (N tokens, MS ms apart) and ``fail STATUS``."""
    last = (request.get("messages") or [{}])[-1]
    content = str(last.get("content") or "").strip()
    if match := re.fullmatch(r"slow (\d+) (\d+)", content):
        return Reply.tokens(int(match.group(1)), delay=int(match.group(2)) / 1000)
    if match := re.fullmatch(r"fail (\d+)", content):
        return Reply.error(int(match.group(1)), "upstream secret detail sk-upstream-1234567890")
    return default_responder(request)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(upstream_url: str, home: Path, **server: Any) -> Any:
    return load_settings(
        home,
        environ={},
        read_file=False,
        model=MODEL,
        models={MODEL: {"api_base": upstream_url, "api_key": "sk-test-upstream"}},
        retries=0,
        storage="sqlite",
        storage_path=str(home / "history.db"),
        server=server,
    )


def write_config(home: Path, upstream_url: str | None = None, **server: Any) -> None:
    """A ``config.toml`` in ``home``: the scripted model (if given) and a ``[server]`` table."""
    lines = []
    if upstream_url is not None:
        lines += [
            f'model = "{MODEL}"',
            "retries = 0",
            f'[models."{MODEL}"]',
            f'api_base = "{upstream_url}"',
            'api_key = "sk-test-upstream"',
        ]
    lines.append("[server]")
    lines += [f"{key} = {json.dumps(value)}" for key, value in server.items()]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(lines) + "\n")


class ThreadServer:
    """uvicorn serving ``create_app(settings)`` in a thread of this process, with the server's
    own HTTP protocol (``http``: another protocol class)."""

    def __init__(self, settings: Any, http: Any = None) -> None:
        import uvicorn
        from chat_shell_http import HTTPProtocol, create_app

        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            http=http or HTTPProtocol,  # as `chat-shell serve`
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            pending = asyncio.all_tasks(self.loop)  # e.g. sse-starlette's shutdown watcher
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    @property
    def state(self) -> Any:
        return self.app.state.chat_shell

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def call(self, coro: Any, timeout: float = 10) -> Any:
        """Run ``coro`` on the server's loop (to look inside it)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class ProcessServer:
    """``python -m chat_shell_http`` in a subprocess, as a user runs it (``command``: another
    way to start it, given the port); its output goes to ``log_path``."""

    def __init__(
        self,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = free_port()
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"
        environ = {**os.environ, "CHAT_SHELL_HOME": str(home), **(env or {})}
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / f"server-{self.port}.log"
        self._log = self.log_path.open("w")
        base = command or [sys.executable, "-m", "chat_shell_http"]
        self.process = subprocess.Popen(
            [*base, "--port", str(self.port), *args],
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @classmethod
    def uvicorn(
        cls, home: Path, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
    ) -> ProcessServer:
        """``uvicorn --factory chat_shell_http:create_app ARGS``, as docs/http.md shows
        (``host``: the address requests go to)."""
        command = [sys.executable, "-m", "uvicorn", "--factory", "chat_shell_http:create_app"]
        return cls(home, *args, env=env, command=command, host=host)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 30, status: int | None = 200) -> ProcessServer:
        """Wait until ``/v1/health`` answers (with ``status``; ``None``: any answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.stop()}")
            try:
                answer = httpx.get(f"{self.url}/v1/health", timeout=1)
                if status is None or answer.status_code == status:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.stop()}")

    def stop(self) -> str:
        """Stop the server; its output."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        return self.log()


# -- a small SSE client ----------------------------------------------------------------------


@dataclass
class Frame:
    event: str
    id: int | None
    data: dict[str, Any]


@dataclass
class Stream:
    response: httpx.Response
    frames: list[Frame] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


async def sse_frames(
    response: httpx.Response, comments: list[str] | None = None
) -> AsyncIterator[Frame]:
    """Parse ``text/event-stream`` per the spec: ``event:``/``id:``/``data:`` lines, blank line
    ends a frame, ``:`` starts a comment."""
    data: list[str]
    event, ident, data = "message", None, []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Frame(event, ident, json.loads("\n".join(data)))
            event, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            if comments is not None:
                comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            ident = int(value)
        elif name == "data":
            data.append(value)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assert_error_shape(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "retryable"} <= set(error)
    assert isinstance(error["retryable"], bool)
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code, error
    return error
