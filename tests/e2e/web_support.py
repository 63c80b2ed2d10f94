"""Helpers of the chat-page tests: a real `chat-shell serve` process on two models, the system
Chromium driven by Playwright, a TCP proxy that can drop connections, and the scripted model's
replies."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from chat_shell.testing import Reply, default_responder
from serve_support import Serve, script_env, write_home

CHROMIUM = Path("/usr/bin/chromium")
# Never a downloaded browser: Debian's chromium, without sandbox (root in CI), GPU or any
# traffic of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECOND_MODEL = "openai/second"

# Untrusted text of every kind a model could use to run code or load something in the page.
PAYLOAD = "\n\n".join(
    [
        "<script>window.__pwned = 'script'</script>",
        "<img src=x onerror=\"window.__pwned = 'img'\">",
        "<svg onload=\"window.__pwned = 'svg'\"></svg>",
        "<iframe srcdoc=\"<script>parent.__pwned = 'iframe'</script>\"></iframe>",
        "<a href=\"javascript:window.__pwned = 'a'\">html link</a>",
        "[md link](javascript:window.__pwned='md-link')",
        "[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<javascript:window.__pwned='autolink'>",
        "![pixel](http://127.0.0.1:9/leak?conversation)",
        "<style>body { display: none }</style>",
        "<form action=/v1/sessions><input name=q></form>",
        "```html\n<script>window.__pwned = 'fence'</script>\n```",
    ]
)


def require_chromium(path: Path = CHROMIUM, environ: Mapping[str, str] = os.environ) -> None:
    """Fail in CI when the browser is missing (.ci/run installs it), skip elsewhere."""
    if path.exists():
        return
    message = f"{path} is missing: install Debian's chromium (apt-get install -y chromium)"
    if environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def responder(request: dict[str, Any]) -> Reply:
    """The default responder plus ``slow N MS`` (N tokens, MS ms apart), ``think`` (reasoning,
    then Markdown) and ``inject`` (the payload as reasoning and as text)."""
    last = (request.get("messages") or [{}])[-1]
    content = str(last.get("content") or "").strip() if last.get("role") == "user" else ""
    if match := re.fullmatch(r"slow (\d+) (\d+)", content):
        return Reply.tokens(int(match.group(1)), delay=int(match.group(2)) / 1000)
    if content == "think":
        return Reply(
            reasoning=["The user wants ", "a sample of ", "Markdown."],
            chunks=[
                "## A sample\n\n",
                "Some **bold**, some *emphasis* and `code`.\n\n",
                "```python\nprint(6 * 7)\n```\n\n",
                "- one\n- two\n\n",
                "See [the docs](https://example.com/docs).",
            ],
        )
    if content == "inject":
        return Reply(reasoning=[PAYLOAD], chunks=[PAYLOAD])
    return default_responder(request)


def web_serve(home: Path, upstream_url: str, **env: str) -> Serve:
    """`chat-shell serve` (access log on) on the scripted model at ``upstream_url``, offering a
    second model there too, without a rate limit; ``env``: more environment variables."""
    tables = (
        f'[models."{SECOND_MODEL}"]\napi_base = "{upstream_url}"\napi_key = "sk-test-upstream"\n'
        "[server]\nrate_limit_per_minute = 0\n"
    )
    write_home(home, upstream_url, tables=tables, api_key="sk-test-upstream")
    return Serve(script_env(home, **env))


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of a server; ``drop()`` cuts every open connection,
    as a network that goes away would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.drops = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open |= {client, server}
            for source, target in ((client, server), (server, client)):
                thread = threading.Thread(target=self._pump, args=(source, target), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, target)

    def _close(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                if sock in self._open:
                    self._open.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def drop(self) -> int:
        """Cut every open connection; how many there were."""
        with self._lock:
            open_now = list(self._open)
        self._close(*open_now)
        count = len(open_now)
        self.drops += 1
        return count

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()
        self._accepting.join(5)
        self.drop()
        for thread in self._threads:
            thread.join(5)
