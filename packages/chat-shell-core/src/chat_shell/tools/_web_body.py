"""Reading a fetched body with its size capped, whatever its ``Content-Encoding``.

httpx undoes gzip and deflate by itself, a whole network chunk at a time, before a caller can
count: 590 bytes of ``gzip, gzip`` on the wire became 501 MiB before the first size check. So
``fetch_url`` reads the raw bytes and inflates them here with zlib's ``max_length``, which never
produces more than asked for: at most ``max_bytes`` are read off the wire and at most
``max_bytes`` (plus one, to tell that there was more) come out. The request asks for
``identity``; a single ``gzip`` or ``deflate`` is still decoded, since some servers send it
anyway, but stacked encodings and any other (``br``, ``zstd``, ``compress``) are refused.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from .._errors import ToolError

if TYPE_CHECKING:
    import httpx

__all__ = ["read_capped"]

_GZIP = 16 + zlib.MAX_WBITS


class _Inflater:
    """One gzip or deflate stream, inflated at most ``room`` bytes at a time."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.done = False
        self._head = b""  # deflate: the first bytes, until they show zlib or raw framing
        self._zlib = zlib.decompressobj(_GZIP) if coding != "deflate" else None

    def _stream(self, data: bytes) -> tuple[zlib._Decompress | None, bytes]:
        if self._zlib is not None:
            return self._zlib, data
        # "deflate" is zlib-framed (RFC 9110); some servers send raw deflate, as browsers allow.
        self._head += data
        if len(self._head) < 2:
            return None, b""
        first, second = self._head[0], self._head[1]
        zlib_framed = first & 0x0F == 8 and ((first << 8) | second) % 31 == 0
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if zlib_framed else -zlib.MAX_WBITS)
        data, self._head = self._head, b""
        return self._zlib, data

    def inflate(self, data: bytes, out: bytearray, room: int) -> None:
        """Append to ``out`` what ``data`` inflates to, at most ``room`` bytes."""
        stream, data = self._stream(data)
        try:
            while stream is not None and data and room > 0:
                piece = stream.decompress(data, room)
                out += piece
                room -= len(piece)
                if stream.eof:  # trailing bytes after the stream are ignored, as httpx does
                    self.done = True
                    return
                if not piece:
                    return
                data = stream.unconsumed_tail
        except zlib.error as exc:
            raise ToolError(f"the page's {self.coding} data is corrupt ({exc})") from None


def _inflater(response: httpx.Response) -> _Inflater | None:
    codings = [
        coding.strip().lower()
        for coding in response.headers.get_list("content-encoding", split_commas=True)
    ]
    codings = [coding for coding in codings if coding not in ("", "identity")]
    if not codings:
        return None
    if len(codings) > 1:
        raise ToolError(f"refused: the page has stacked encodings ({', '.join(codings)[:100]})")
    if codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise ToolError(f"refused: the page is encoded as {codings[0][:40]!r}, not gzip or deflate")
    return _Inflater(codings[0])


async def read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body, decoded, at most ``max_bytes``, and whether it was cut."""
    inflater = _inflater(response)
    body = bytearray()
    wire = 0
    async for chunk in response.aiter_raw():
        wire += len(chunk)
        if inflater is None:
            body += chunk[: max_bytes + 1 - len(body)]
        else:
            inflater.inflate(chunk, body, max_bytes + 1 - len(body))
        if len(body) > max_bytes or wire > max_bytes:
            return bytes(body[:max_bytes]), True
        if inflater is not None and inflater.done:
            break
    return bytes(body), False
