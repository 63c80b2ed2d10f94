"""Shared by the CLI tests: where the console script is, the type of the ``cli`` fixture, and
``Terminal``, the console script in a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import ctypes
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
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("chat-shell")

Run = Callable[..., subprocess.CompletedProcess[str]]

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def without_permission_override() -> None:
    """For ``subprocess``'s ``preexec_fn``: as root, give up the two capabilities that let root
    read and write any file, so that file modes bind the child as they bind any user (it keeps
    the owner's rights to root's own files, the Python it runs from among them)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


# Make the pty the child's controlling terminal, so Ctrl-C becomes SIGINT as in a real terminal.
_WRAPPER = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>78]")


class Terminal:
    """``chat-shell ARGS`` in a pseudo-terminal of 40×120: ``type`` keys, ``expect`` output."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines, self.columns = 40, 120
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.lines, self.columns, 0, 0))
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

    def settle(self, quiet: float = 0.5, timeout: float = 20) -> None:
        """Read until the program has written nothing for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], quiet)
            if not ready:
                return
            try:
                self.raw += os.read(self.master, 65536)
            except OSError:
                return

    def screen(self) -> list[str]:
        """The lines the terminal shows now, as a terminal emulator draws the output."""
        import pyte

        screen = pyte.Screen(self.columns, self.lines)
        pyte.ByteStream(screen).feed(self.raw)
        return [line.rstrip() for line in screen.display]

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
