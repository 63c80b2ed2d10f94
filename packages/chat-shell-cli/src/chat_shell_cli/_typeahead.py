"""Keys typed while an answer streams: not echoed into it, and kept for the next prompt.

Between two prompts the terminal is in its normal mode, which echoes whatever is typed where the
cursor is: inside the answer being drawn. That also throws rich's live display off: an echoed
``^C`` at the end of a full line wraps to a new one, so the redraw after Ctrl-C started a line
too low and showed the answer's first line twice. While an answer streams, ``TypeAhead`` turns
the echo off and reads the keys itself, with prompt_toolkit's key parser; the next prompt gets
them as prompt_toolkit's own type-ahead, as if they had been typed there (Enter sends).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompt_toolkit.key_binding import KeyPress

__all__ = ["TypeAhead"]


class TypeAhead:
    """Holds what is typed on the terminal ``fd`` while inside ``holding()``."""

    def __init__(self, fd: int) -> None:
        from prompt_toolkit.input.vt100_parser import Vt100Parser

        self.fd = fd
        self._keys: list[KeyPress] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._parser = Vt100Parser(self._keys.append)
        self._saved: list[Any] | None = None  # the attributes to go back to, while holding

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """No echo, keys kept; Ctrl-C still interrupts (the terminal keeps its signals)."""
        import termios

        try:
            saved = termios.tcgetattr(self.fd)
        except (termios.error, OSError):  # not a terminal after all: nothing to hold
            yield
            return
        quiet = [*saved[:6], list(saved[6])]
        # NOFLSH: Ctrl-C must not flush what was typed before it (nor output on its way)
        quiet[3] = (saved[3] & ~(termios.ECHO | termios.ICANON)) | termios.NOFLSH
        quiet[6][termios.VMIN] = 0  # reads never wait
        quiet[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, quiet)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, self._read)
        self._saved = saved
        try:
            yield
        finally:
            loop.remove_reader(self.fd)
            self._read()
            self._saved = None
            termios.tcsetattr(self.fd, termios.TCSANOW, saved)

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """The terminal as it was (for a question asked in the middle of an answer)."""
        import termios

        saved = self._saved
        if saved is None:
            yield
            return
        quiet = termios.tcgetattr(self.fd)
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.fd)
        termios.tcsetattr(self.fd, termios.TCSANOW, saved)
        try:
            yield
        finally:
            termios.tcsetattr(self.fd, termios.TCSANOW, quiet)
            loop.add_reader(self.fd, self._read)

    def take(self) -> list[KeyPress]:
        """The keys typed so far, then forgotten."""
        self._parser.flush()
        keys = list(self._keys)
        self._keys.clear()
        return keys

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return
        if data:
            self._parser.feed(self._decoder.decode(data))
