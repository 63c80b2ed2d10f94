"""The lean model client's connections: an asyncio-native network backend for httpcore and
a keep-alive pool.

httpcore's default backend goes through anyio, which opens a cancel scope for every read; when a
model streams one token per network read, that scope is a large share of the CPU a streamed
token costs. ``AsyncioNetworkBackend`` reads from an ``asyncio.Protocol`` buffer instead: a read
that finds data returns it at once, and a read that waits arms one timer for its timeout.

``ConnectionPool`` keeps idle connections to one origin in a stack, taken and returned in O(1);
httpcore's own pool rescans every connection whenever a request starts or ends, which grows with
the square of the connections a busy server holds. Through a proxy, httpcore's pool is used.
"""

# The timeout parameters are httpcore's interface for network backends.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpcore

__all__ = ["AsyncioNetworkBackend", "ConnectionPool"]

_HIGH_WATER = 1 << 20  # stop reading from the socket when this much waits unread


class _Protocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one reader (httpcore reads a connection serially)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self.reader: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, of asyncio or of another loop (uvloop's are not subclasses)
        self.transport = cast(asyncio.Transport, transport)

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake(self.reader)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake(self.reader)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake(self.reader)
        self._wake(self.drained)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake(self.drained)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            loop = asyncio.get_running_loop()
            waiter = protocol.reader = loop.create_future()
            timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
            try:
                await waiter
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out reading from the server") from None
            finally:
                protocol.reader = None
                if timer is not None:
                    timer.cancel()
        buffer = protocol.buffer
        if not buffer:
            if protocol.error is not None:
                raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
            return b""  # the server closed the connection
        data = bytes(buffer[:max_bytes])
        del buffer[:max_bytes]
        if protocol.reading_paused and len(buffer) <= _HIGH_WATER // 2:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if self._transport.is_closing() or protocol.error is not None:
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if protocol.writing_paused:
            protocol.drained = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await protocol.drained
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out writing to the server") from None
            finally:
                protocol.drained = None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:  # the loop found the connection already closed
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return _Stream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of an idle pooled connection: closed or garbage?
            return bool(self._protocol.buffer) or self._protocol.eof
        key = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }.get(info)
        return self._transport.get_extra_info(key) if key else None


class AsyncioNetworkBackend(httpcore.AsyncNetworkBackend):
    """TCP connections as asyncio transports (TLS through ``loop.start_tls``)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one origin (or through one proxy).

    Any number of requests run at once, each on its own connection; a connection whose
    response was read to its end goes back to the pool, newest first, up to ``max_idle``.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        *,
        proxy: httpcore.AsyncHTTPProxy | None = None,
        max_idle: int = 100,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._ssl_context = ssl_context
        self._proxy = proxy
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._backend = AsyncioNetworkBackend()
        self._idle: list[httpcore.AsyncHTTPConnection] = []

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            network_backend=self._backend,
        )

    @asynccontextmanager
    async def stream(self, request: httpcore.Request) -> AsyncIterator[httpcore.Response]:
        """Send ``request``; the response is open (its body unread) inside the block."""
        if self._proxy is not None:
            response = await self._proxy.handle_async_request(request)
            try:
                yield response
            finally:
                await response.aclose()
            return
        connection = await self._take(request.url.origin)
        try:
            response = await connection.handle_async_request(request)
            try:
                yield response
            finally:
                await response.aclose()
        except BaseException:
            await connection.aclose()
            raise
        if connection.is_idle() and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            await connection.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()
        if self._proxy is not None:
            await self._proxy.aclose()
