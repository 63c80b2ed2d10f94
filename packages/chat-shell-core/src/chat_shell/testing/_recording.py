"""Answers replayed byte for byte: recorded streams of real servers, or any raw HTTP answer."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["Recording", "send_recording"]

# An SSE event ends at a blank line, whichever line ending the server used.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class Recording:
    """One answer of the scripted server, sent exactly as given.

    ``body`` is written in pieces as a real server streams it: one network write per SSE event
    (for ``text/event-stream``) or per line (``application/x-ndjson``), as one block otherwise;
    with ``Transfer-Encoding: chunked`` unless ``headers`` set a ``Content-Length``. ``status``
    and ``headers`` are sent as they are (a ``Retry-After``, a content type of any kind).
    """

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/event-stream"})

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], content_type: str = "text/event-stream"
    ) -> Recording:
        """A recorded body (an SSE stream by default), replayed unchanged."""
        with open(path, "rb") as handle:
            return cls(handle.read(), headers={"Content-Type": content_type})

    @classmethod
    def sse(cls, *events: dict[str, Any] | str, done: bool = True) -> Recording:
        """An SSE body of ``data:`` events (objects as JSON, strings as they are), then
        ``data: [DONE]`` unless ``done`` is false."""
        lines = [
            b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n"
            for e in events
        ]
        return cls(b"".join(lines) + (b"data: [DONE]\n\n" if done else b""))

    def events(self) -> Iterator[dict[str, Any]]:
        """The JSON objects of an SSE body's ``data:`` events, up to ``[DONE]`` (for in-process
        fakes, which feed them to the chunk parser as a backend would)."""
        for event in _EVENT_END.split(self.body):
            data = b"\n".join(
                line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")
            )
            if data == b"[DONE]":
                return
            if data:
                yield json.loads(data)

    def pieces(self) -> list[bytes]:
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        if "event-stream" in content_type:
            pieces, start = [], 0
            for match in _EVENT_END.finditer(self.body):
                pieces.append(self.body[start : match.end()])
                start = match.end()
            return [*pieces, self.body[start:]] if start < len(self.body) else pieces
        if "ndjson" in content_type:
            return self.body.splitlines(keepends=True)
        return [self.body]


def send_recording(handler: BaseHTTPRequestHandler, recording: Recording) -> None:
    """Write ``recording`` as the answer to the request ``handler`` is serving."""
    handler.send_response(recording.status)
    for name, value in recording.headers.items():
        handler.send_header(name, value)
    chunked = not any(name.lower() == "content-length" for name in recording.headers)
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for piece in recording.pieces():
            if not piece:
                continue
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            handler.wfile.flush()
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True
