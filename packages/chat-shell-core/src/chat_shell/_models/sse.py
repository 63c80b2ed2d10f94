"""Incremental parsing of streamed lines and of server-sent events (the WHATWG grammar).

Bytes go in as the network delivers them; complete lines and events come out. Lines end with
LF, CRLF or a lone CR (a CRLF split across two reads is one line end). A line that arrives in
many pieces is joined once, when it ends, so the cost stays linear in its length; a line or an
event longer than ``max_size`` is an ``SSEError``.
"""

from __future__ import annotations

__all__ = ["LineSplitter", "SSEError", "SSEParser"]

MAX_SIZE = 16 << 20  # one line, or one event's data: a chunk of a model's answer is far smaller
_BOM = b"\xef\xbb\xbf"


class SSEError(ValueError):
    """The stream broke a limit (a line or an event too long)."""


class LineSplitter:
    """Splits a byte stream into lines (without their line ends)."""

    __slots__ = ("_cr", "_first", "_pending", "_pending_size", "max_size")

    def __init__(self, max_size: int = MAX_SIZE) -> None:
        self.max_size = max_size
        self._pending: list[bytes] = []  # the pieces of the line not ended yet
        self._pending_size = 0
        self._cr = False  # the last piece ended with CR: a LF first in the next one is its pair
        self._first = True  # a byte-order mark may open the stream

    def lines(self, data: bytes) -> list[bytes]:
        """The lines that ``data`` completes."""
        if self._cr and data[:1] == b"\n":
            data = data[1:]
        if b"\r" in data:
            self._cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            self._cr = False
        lines = data.split(b"\n")
        rest = lines.pop()
        if lines:
            if self._pending:
                self._pending.append(lines[0])
                lines[0] = b"".join(self._pending)
                self._pending = []
                self._pending_size = 0
            if self._first:
                self._first = False
                lines[0] = lines[0].removeprefix(_BOM)
            if len(lines[0]) > self.max_size:
                raise SSEError(f"a stream line longer than {self.max_size} bytes")
        if rest:
            self._pending.append(rest)
            self._pending_size += len(rest)
            if self._pending_size > self.max_size:
                raise SSEError(f"a stream line longer than {self.max_size} bytes")
        return lines

    def end(self) -> list[bytes]:
        """The last line, if the stream ended without a line end after it."""
        if not self._pending:
            return []
        line = b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        if self._first:
            line = line.removeprefix(_BOM)
        return [line]


class SSEParser(LineSplitter):
    """Server-sent events from a byte stream: ``feed()`` returns the ``(event type, data)`` of
    each event the bytes complete (type ``b"message"`` unless an ``event:`` field names one;
    several ``data:`` lines joined with LF). Comments, ``id:`` and ``retry:`` are skipped."""

    __slots__ = ("_data", "_data_size", "_event")

    def __init__(self, max_size: int = MAX_SIZE) -> None:
        super().__init__(max_size)
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        return self._parse(self.lines(data))

    def end(self) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        """At the end of the stream: an event not closed by a blank line is given too (a
        lenient reading; the grammar would drop it)."""
        return self._parse([*super().end(), b""])

    def _parse(self, lines: list[bytes]) -> list[tuple[bytes, bytes]]:
        # The hot path of every streamed token: locals, and the usual line tested first.
        events: list[tuple[bytes, bytes]] = []
        data = self._data
        size = self._data_size
        limit = self.max_size
        for line in lines:
            if line[:6] == b"data: ":
                data.append(line[6:])
                size += len(line)
            elif not line:
                if data:
                    events.append((self._event or b"message", b"\n".join(data)))
                    data.clear()
                    size = 0
                self._event = b""
            elif line[:1] != b":":  # not a comment
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    data.append(value)
                    size += len(line)
                elif name == b"event":
                    self._event = value
            if size > limit:
                raise SSEError(f"a stream event longer than {limit} bytes")
        self._data_size = size
        return events
