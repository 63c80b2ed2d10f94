"""``chat-shell chat`` in a real pseudo-terminal: type, watch the stream, Ctrl-C, /history, exit."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from cli_support import SCRIPT

# Make the pty the child's controlling terminal, so Ctrl-C becomes SIGINT as in a real terminal.
_WRAPPER = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>78]")


class Terminal:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, str(SCRIPT), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"},
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""
        self.seen = 0  # expect() looks only at output after the last match

    @property
    def text(self) -> str:
        return _ANSI.sub("", self.raw.decode(errors="replace"))

    def expect(self, pattern: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text[self.seen :])
            if match:
                self.seen += match.end()
                return match.group(0)
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:
                    break
        pytest.fail(f"no {pattern!r} on the screen; it shows:\n{self.text[-3000:]}")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self.master)

    def close(self) -> int:
        deadline = time.monotonic() + 20
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:  # keep reading, or a full pty would block the child
                with contextlib.suppress(OSError):
                    self.raw += os.read(self.master, 65536)
        return self.process.wait(timeout=5)


def test_interactive_session(env: dict[str, str], server: ScriptedModelServer) -> None:
    terminal = Terminal(["chat"], env)
    try:
        terminal.expect(r"/help for commands")
        terminal.type('call calculator {"expression": "123 * 456"}\r')
        terminal.expect(r'🔧 calculator\("123 \* 456"\)')
        terminal.expect(r"✅ 56088")
        terminal.expect(r"result: 56088")
        # a slow answer, stopped with Ctrl-C part-way; the session goes on
        server.add(Reply.tokens(400, delay=0.05))
        terminal.type("tell me a long story\r")
        terminal.expect(r"t3 ")
        terminal.type("\x03")
        terminal.expect(r"stopped")
        terminal.type("/history\r")
        terminal.expect(r"You ·")
        terminal.expect(r"✅ 56088")
        terminal.expect(r"tell me a long story")
        terminal.expect(r"\[cancelled\]")
        terminal.type("/session\r")
        terminal.expect(r"session: [0-9a-f-]{36}")
        terminal.type("exit\r")
        assert terminal.close() == 0
    finally:
        terminal.kill()
    # the partial answer is stored, marked cancelled
    stream = server.requests[-1]["messages"]
    assert stream[-1]["content"] == "tell me a long story"


def test_continue_and_slash_commands(env: dict[str, str], server: ScriptedModelServer) -> None:
    subprocess.run(
        [str(SCRIPT), "query", "remember pears"],
        env=env,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    terminal = Terminal(["chat", "--continue"], env)
    try:
        terminal.expect(r"\(continued\)")
        terminal.type("/model openai/other\r")
        terminal.expect(r"model: openai/other")
        terminal.type("and apples\r")
        terminal.expect(r"echo: and apples")
        assert [m["content"] for m in server.requests[-1]["messages"]][-3:] == [
            "remember pears",
            "echo: remember pears",
            "and apples",
        ]
        assert server.requests[-1]["model"] == "other"
        terminal.type("/retry\r")
        terminal.expect(r"retrying")
        terminal.expect(r"echo: and apples")
        assert len(server.requests[-1]["messages"]) == 3
        terminal.type("/tools\r")
        terminal.expect(r"calculator")
        terminal.type("/nope\r")
        terminal.expect(r"unknown command /nope")
        terminal.type("/new\r")
        terminal.expect(r"new session")
        terminal.expect(r"❯")
        terminal.type("\x04")
        assert terminal.close() == 0
    finally:
        terminal.kill()


def test_missing_credentials_before_the_first_question(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(SCRIPT), "chat"],
        env={**env, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "OPENAI_API_KEY" in result.stderr


def test_piped_lines(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(SCRIPT), "chat"],
        env=env,
        input="first\n/session\nsecond\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "echo: first" in result.stdout
    assert "echo: second" in result.stdout
    assert "session: " in result.stdout
