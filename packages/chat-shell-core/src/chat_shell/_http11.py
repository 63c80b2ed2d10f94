"""A small HTTP/1.1 client on asyncio, for the OpenAI-protocol model client's one job: POST a
JSON body and read the (usually streamed) answer, over kept-alive connections.

Why not httpx: a model stream sends every token in its own network read. Per read, httpx runs
anyio's cancel scope, httpcore's h11 state machine and several generator layers; with hundreds of
streams in one server that was most of the server's CPU. Here a read that finds data in the
socket buffer returns it at once, a read that must wait arms one timer for its timeout, and
chunked framing is decoded with two ``bytearray.find`` calls per chunk.

What it does: ``Content-Length``, chunked and close-delimited bodies; 1xx answers skipped;
keep-alive with a pool of idle connections (taken and returned in O(1), dropped when the server
closed them, sent garbage, or after ``keepalive_expiry`` seconds; a request that a reused
connection lost before any byte of answer is sent once more on a new connection); TLS by
``loop.start_tls`` (hostname checked by the given context); HTTP proxies (forwarding for
``http://``, a ``CONNECT`` tunnel for ``https://``, ``Proxy-Authorization`` from the proxy URL's
credentials); connect, read and write timeouts. Limits: a response head of at most 64 KiB,
chunk-size lines of at most 1 KiB. Not done: HTTP/2, redirects, compression, cookies.
"""

# Timeouts are parameters on purpose: a timer is armed only when a read has to wait, where an
# asyncio.timeout() block would cost a timer per read.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

__all__ = [
    "ConnectFailed",
    "HTTPClient",
    "HTTPError",
    "Origin",
    "ProtocolFailure",
    "Response",
    "TimedOut",
]

_HEAD_LIMIT = 64 * 1024
_LINE_LIMIT = 1024
_HIGH_WATER = 1 << 20  # stop reading from the socket when this much waits unread
_COMPACT = 64 * 1024  # drop consumed bytes from the buffer's front past this much
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class HTTPError(Exception):
    """A transport failure; the subclasses say which kind."""


class ConnectFailed(HTTPError):
    """No connection (refused, unreachable, TLS or proxy refused); nothing was sent."""


class TimedOut(HTTPError):
    """Connecting, waiting for data or sending took longer than the timeout."""


class ProtocolFailure(HTTPError):
    """The connection broke, or the server's answer is not valid HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str  # "http" or "https"
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an ``http(s)://`` URL; ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL with a host")  # (no credentials)
        return cls(parts.scheme, parts.hostname, parts.port or _default_port(parts.scheme))

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _default_port(self.scheme) else f"{host}:{self.port}"


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _Protocol(asyncio.Protocol):
    """The socket's side: buffers what arrives and wakes the connection's one reader."""

    def __init__(self) -> None:
        self.transport = cast(asyncio.Transport, None)
        self.buffer = bytearray()
        self.start = 0  # bytes before this offset are consumed
        self.received = 0  # bytes, in all
        self.eof = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, of asyncio or of another loop (uvloop's are not subclasses)
        self.transport = cast(asyncio.Transport, transport)

    @staticmethod
    def _wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received += len(data)
        if len(self.buffer) - self.start > _HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake(self.waiter)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake(self.waiter)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake(self.waiter)
        self._wake(self.drained)
        self._wake(self.closed)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake(self.drained)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection:
    """One connection: buffered reads with a timeout, writes with flow control."""

    def __init__(self, protocol: _Protocol) -> None:
        self.protocol = protocol
        self.idle_since = 0.0
        self.received_when_idle = 0

    @property
    def reusable(self) -> bool:
        """Idle and still sound: not closed by the server, nothing unexpected waiting."""
        protocol = self.protocol
        return not (
            protocol.eof
            or protocol.error is not None
            or protocol.transport.is_closing()
            or len(protocol.buffer) > protocol.start
        )

    @property
    def heard_anything(self) -> bool:
        """Whether any byte has arrived since the connection went idle."""
        return self.protocol.received > self.received_when_idle

    def close(self) -> None:
        """Drop the connection at once (no TLS goodbye: nothing more is sent on it)."""
        self.protocol.transport.abort()

    async def _fill(self, timeout: float | None) -> None:
        """Wait until more bytes (or the end) arrive."""
        protocol = self.protocol
        if protocol.eof:
            if protocol.error is not None:
                raise ProtocolFailure(f"the connection broke ({protocol.error})")
            raise ProtocolFailure("the server closed the connection")
        loop = asyncio.get_running_loop()
        waiter = protocol.waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        except TimeoutError:
            raise TimedOut("timed out waiting for the server") from None
        finally:
            protocol.waiter = None
            if timer is not None:
                timer.cancel()

    def _consume(self, end: int) -> bytes:
        protocol = self.protocol
        buffer = protocol.buffer
        data = bytes(buffer[protocol.start : end])
        if end >= len(buffer):
            buffer.clear()
            protocol.start = 0
        elif end > _COMPACT:
            del buffer[:end]
            protocol.start = 0
        else:
            protocol.start = end
        if protocol.reading_paused and len(buffer) - protocol.start <= _HIGH_WATER // 2:
            protocol.reading_paused = False
            protocol.transport.resume_reading()
        return data

    async def read_until(self, marker: bytes, limit: int, timeout: float | None) -> bytes:
        """Bytes up to and including ``marker``; ``ProtocolFailure`` past ``limit`` bytes."""
        protocol = self.protocol
        while True:
            found = protocol.buffer.find(marker, protocol.start)
            if found >= 0 and found - protocol.start < limit:
                return self._consume(found + len(marker))
            if len(protocol.buffer) - protocol.start >= limit:
                raise ProtocolFailure("the server sent an overlong line or head")
            await self._fill(timeout)

    async def read_some(self, most: int, timeout: float | None) -> bytes:
        """At least one byte and at most ``most``; ``b""`` at the end of the stream."""
        protocol = self.protocol
        while len(protocol.buffer) == protocol.start:
            if protocol.eof and protocol.error is None:
                return b""
            await self._fill(timeout)
        return self._consume(min(len(protocol.buffer), protocol.start + most))

    async def write(self, data: bytes, timeout: float | None) -> None:
        protocol = self.protocol
        if protocol.eof or protocol.transport.is_closing():
            raise ProtocolFailure("the connection is closed")
        protocol.transport.write(data)
        if protocol.writing_paused:
            protocol.drained = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await protocol.drained
            except TimeoutError:
                raise TimedOut("timed out sending to the server") from None
            finally:
                protocol.drained = None

    async def start_tls(
        self, context: ssl.SSLContext, hostname: str, timeout: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        protocol = self.protocol
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    protocol.transport, protocol, context, server_hostname=hostname
                )
        except TimeoutError:
            self.close()
            raise TimedOut("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise ConnectFailed(f"TLS failed: {exc}") from exc
        if transport is None:
            raise ConnectFailed("the connection closed during the TLS handshake")
        protocol.transport = transport


async def _open(host: str, port: int, timeout: float | None) -> _Connection:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(_Protocol, host, port)
    except TimeoutError:
        raise TimedOut(f"timed out connecting to {host}:{port}") from None
    except OSError as exc:
        raise ConnectFailed(f"{host}:{port}: {exc.strerror or exc}") from exc
    return _Connection(protocol)


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    """(status, HTTP version, headers with lower-case names) of a response head."""
    lines = head.decode("latin-1").split("\n")
    status_line = lines[0].rstrip("\r")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and len(code) == 3):
        raise ProtocolFailure(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
    headers = []
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise ProtocolFailure(f"malformed header line {line[:80]!r}")
        headers.append((name.lower(), value.strip()))
    return int(code), version, headers


class Response:
    """The status and headers of an answer; its body is read with ``stream()`` or ``read()``."""

    def __init__(
        self,
        connection: _Connection,
        status: int,
        version: str,
        headers: list[tuple[str, str]],
        timeout: float | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self._connection = connection
        self._timeout = timeout
        self.complete = False  # the body was read to its end
        tokens = {t.strip().lower() for t in self.header("connection").split(",")}
        self._keep_alive = version == "HTTP/1.1" and "close" not in tokens
        encoding = self.header("transfer-encoding").lower()
        self._chunked = encoding.rsplit(",", 1)[-1].strip() == "chunked"
        self._length: int | None = None
        length = self.header("content-length")
        if status in (204, 304):
            self._chunked, self._length = False, 0
        elif encoding:
            # a coding other than chunked runs to the end; with a length as well, it is suspect
            self._keep_alive = self._keep_alive and self._chunked and not length
        elif length:
            if not length.isdigit():
                raise ProtocolFailure(f"bad Content-Length {length[:40]!r}")
            self._length = int(length)
        else:
            self._keep_alive = False  # no framing: the body ends when the connection does

    def header(self, name: str) -> str:
        """The value of header ``name`` (lower case), several joined by commas; ``""`` if
        absent."""
        return ", ".join(value for key, value in self.headers if key == name)

    @property
    def reusable(self) -> bool:
        return self.complete and self._keep_alive

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, piece by piece, as it arrives."""
        connection, timeout = self._connection, self._timeout
        if self._chunked:
            while True:
                line = await connection.read_until(b"\n", _LINE_LIMIT, timeout)
                size_text = line.split(b";", 1)[0].strip()
                if not size_text or size_text.strip(_HEX_DIGITS):
                    raise ProtocolFailure(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if size == 0:
                    while (await connection.read_until(b"\n", _HEAD_LIMIT, timeout)).strip():
                        pass  # trailer fields, ignored
                    break
                while size:
                    data = await connection.read_some(size, timeout)
                    if not data:
                        raise ProtocolFailure("the body ended inside a chunk")
                    size -= len(data)
                    yield data
                if (await connection.read_until(b"\n", 3, timeout)).strip():
                    raise ProtocolFailure("a chunk is longer than its size says")
        elif self._length is not None:
            left = self._length
            while left:
                data = await connection.read_some(left, timeout)
                if not data:
                    raise ProtocolFailure("the body ended before its Content-Length")
                left -= len(data)
                yield data
        else:
            while data := await connection.read_some(1 << 16, timeout):
                yield data
        self.complete = True

    async def read(self, limit: int = 1 << 20) -> bytes:
        """The whole body (at most ``limit`` bytes are kept)."""
        parts: list[bytes] = []
        kept = 0
        async for data in self.stream():
            if kept < limit:
                parts.append(data[: limit - kept])
                kept += len(parts[-1])
        return b"".join(parts)


def _check_header(name: str, value: str) -> None:
    if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
        raise ValueError(f"header {name!r} has a character that is not allowed")


class HTTPClient:
    """Requests to one origin, directly or through an HTTP proxy, over pooled connections.

    Any number of requests run at once, each on its own connection; a connection whose
    answer was read to its end goes back to the pool, newest first, up to ``max_idle``.
    """

    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 100,
        keepalive_expiry: float = 4.0,  # under the 5 s idle timeout of uvicorn, Node …
    ) -> None:
        if origin.scheme == "https" and ssl_context is None:
            raise ValueError("an https origin needs an ssl_context")
        self.origin = origin
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._proxy: Origin | None = None
        self._proxy_ssl_context = proxy_ssl_context
        self._proxy_headers: list[tuple[str, str]] = []
        if proxy is not None:
            parts = urlsplit(proxy)
            self._proxy = Origin.of(proxy)
            if self._proxy.scheme == "https" and proxy_ssl_context is None:
                raise ValueError("an https proxy needs a proxy_ssl_context")
            if parts.username is not None:
                credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                token = base64.b64encode(credentials.encode()).decode()
                self._proxy_headers.append(("Proxy-Authorization", f"Basic {token}"))

    @property
    def _forwarding(self) -> bool:
        """Plain HTTP through a proxy: requests go to the proxy in absolute form."""
        return self._proxy is not None and self.origin.scheme == "http"

    async def _connect(self, timeout: float | None) -> _Connection:
        origin, proxy = self.origin, self._proxy
        first = proxy or origin
        connection = await _open(first.host, first.port, timeout)
        try:
            if proxy is not None and proxy.scheme == "https":
                assert self._proxy_ssl_context is not None
                await connection.start_tls(self._proxy_ssl_context, proxy.host, timeout)
            if proxy is not None and origin.scheme == "https":
                await self._tunnel(connection, timeout)
            if origin.scheme == "https":
                assert self._ssl_context is not None
                await connection.start_tls(self._ssl_context, origin.host, timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    async def _tunnel(self, connection: _Connection, timeout: float | None) -> None:
        target = f"{self.origin.host}:{self.origin.port}"
        if ":" in self.origin.host:
            target = f"[{self.origin.host}]:{self.origin.port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        lines += [f"{name}: {value}" for name, value in self._proxy_headers]
        await connection.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), timeout)
        head = await connection.read_until(b"\r\n\r\n", _HEAD_LIMIT, timeout)
        status, _, _ = _parse_head(head)
        if not 200 <= status < 300:
            raise ConnectFailed(f"the proxy refused the tunnel (HTTP {status})")

    def _take(self) -> _Connection | None:
        idle, now = self._idle, time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.reusable and now - connection.idle_since < self._keepalive_expiry:
                return connection
            connection.close()
        return None

    def _give_back(self, connection: _Connection) -> None:
        if len(self._idle) < self._max_idle and connection.reusable:
            connection.idle_since = time.monotonic()
            connection.received_when_idle = connection.protocol.received
            self._idle.append(connection)
        else:
            connection.close()

    def _request_head(self, method: str, url: str, headers: list[tuple[str, str]]) -> bytes:
        parts = urlsplit(url)
        if self._forwarding:
            target = url.split("#", 1)[0]
        else:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.origin.authority}"]
        extra = self._proxy_headers if self._forwarding else []
        for name, value in [*headers, *extra]:
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        connect_timeout: float | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Response]:
        """Send a request to ``url`` (of this client's origin); inside the block the answer's
        status and headers are known and its body is unread. ``timeout`` bounds each wait for
        data and each write; ``connect_timeout`` the connection (with TLS and proxy)."""
        if Origin.of(url) != self.origin:
            raise ValueError(f"the URL is not on {self.origin.authority}")
        request = self._request_head(method, url, [*headers, ("Content-Length", str(len(body)))])
        request += body
        connection = self._take()
        reused = connection is not None
        if connection is None:
            connection = await self._connect(connect_timeout)
        response: Response | None = None
        try:
            try:
                answer = await self._exchange(connection, request, timeout)
            except ProtocolFailure:
                if not reused or connection.heard_anything:
                    raise
                # A kept-alive connection the server closed just as it was taken (its idle
                # timeout): the request was not answered at all. Once more, on a new one.
                connection.close()
                connection = await self._connect(connect_timeout)
                answer = await self._exchange(connection, request, timeout)
            response = Response(connection, *answer, timeout)
            yield response
        finally:
            if response is not None and response.reusable:
                self._give_back(connection)
            else:
                connection.close()

    @staticmethod
    async def _exchange(
        connection: _Connection, request: bytes, timeout: float | None
    ) -> tuple[int, str, list[tuple[str, str]]]:
        """Send ``request``; the answer's status, version and headers (after any 1xx)."""
        await connection.write(request, timeout)
        while True:
            raw = await connection.read_until(b"\r\n\r\n", _HEAD_LIMIT, timeout)
            status, version, headers = _parse_head(raw)
            if status >= 200:
                return status, version, headers
            if status == 101:
                raise ProtocolFailure("the server switched protocols")

    async def aclose(self) -> None:
        """Close the idle connections, and wait (briefly) until their sockets are."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        if idle:
            await asyncio.wait([c.protocol.closed for c in idle], timeout=1.0)
