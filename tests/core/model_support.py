"""Helpers of the model-client tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat_shell.testing import Reply, reply_chunks


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one HTTP/1.1 request, as a hand-written test server reads it."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def sse_stream(
    reply: Reply,
    *,
    line_end: bytes = b"\n",
    split_data: bool = False,
    comments: bool = False,
    bom: bool = False,
    event: bytes | None = None,
    role_chunk: bool = True,
) -> bytes:
    """``reply``'s chunks as an SSE body written in one of the grammar's other ways: another
    line end, each event's JSON over several ``data:`` lines (split at its commas: JSON allows
    the LF the lines are joined with), comments and ``id:`` fields between events, a BOM, an
    ``event:`` field on every event; without the first chunk (the role, no text) if not
    ``role_chunk``."""
    chunks: list[dict[str, Any] | str] = [*reply_chunks(reply), "[DONE]"]
    events = []
    for chunk in chunks if role_chunk else chunks[1:]:
        text = chunk if isinstance(chunk, str) else json.dumps(chunk)
        pieces = text.encode().split(b", ") if split_data else [text.encode()]
        lines = [
            b"data: " + piece + (b"," if i < len(pieces) - 1 else b"")
            for i, piece in enumerate(pieces)
        ]
        if event is not None:
            lines.insert(0, b"event: " + event)
        if comments:
            lines = [b": keep-alive", b"id: 1", *lines]
        events.append(line_end.join(lines) + line_end + line_end)
    return (b"\xef\xbb\xbf" if bom else b"") + b"".join(events)


@dataclass(frozen=True)
class Authority:
    """A certificate authority made for the test, and a server certificate it signed."""

    ca: Path  # the CA's certificate (PEM): what a client must trust
    folder: Path  # a folder holding only the CA, hashed as `openssl rehash` does
    cert: Path  # the server's certificate for 127.0.0.1, signed by the CA
    key: Path


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy ``source`` to ``sink`` until either end closes (the test proxies' relay)."""
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()
