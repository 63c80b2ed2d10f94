"""The HTTP protocol of ``chat-shell serve``: uvicorn's, plus the connection limits it lacks.

uvicorn has no deadline for a request head (its keep-alive timeout covers only the time between
two requests, and any byte disarms it), no size limit on a head with httptools, and its
``limit_concurrency`` refuses a request only once its head has arrived, so a client that sends
nothing holds a file descriptor for ever. This protocol adds, per connection:

- a deadline for each request head (``head_timeout_seconds``), counted from the connection's
  start or from the end of the previous answer: past it the connection is closed (with a 408
  if part of a head came);
- a size limit for each head (``max_head_bytes``; 431 beyond);
- a cap on open connections (``max_connections``, kept below the file-descriptor limit): a
  connection beyond it is answered 503 at once and closed, with a log line;
- the one JSON error body for the 400 uvicorn sends for a request it cannot parse.

The limits come from the app's ``[server]`` settings through the lifespan state, so
``uvicorn --factory chat_shell_http:create_app --http chat_shell_http:HTTPProtocol`` has them too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from ._errors import error_json
from ._settings import ServerSettings

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _ProtocolBase
    from uvicorn.server import ServerState
else:
    _ProtocolBase = object

__all__ = [
    "LIMITS_KEY",
    "PROTOCOL_KEY",
    "ConnectionLimits",
    "HTTPProtocol",
    "abort_connection",
    "connection_cap",
    "guarded",
]

logger = logging.getLogger("chat_shell_http")

LIMITS_KEY = "chat_shell_http.connection_limits"  # lifespan state: this app's ConnectionLimits
PROTOCOL_KEY = "chat_shell_http.protocol"  # lifespan state: set once HTTPProtocol serves the app

_FD_RESERVE = 64  # descriptors kept for storage, model and tool connections, logs
_WARN_EVERY = 10.0  # seconds between two "refused connections" log lines
_LINGER = 2.0  # seconds a refused client has to read its answer before the socket goes

# The connection a request came on, as its task sees it (the task is made while the protocol
# parses the head, so it inherits the value set then).
_TRANSPORT: contextvars.ContextVar[asyncio.Transport | None] = contextvars.ContextVar(
    "chat_shell_http_transport", default=None
)


def abort_connection() -> bool:
    """Drop the current request's connection at once, with whatever is queued to send (a
    client that stopped reading holds no socket or send buffer). ``False`` if unknown (the
    app is not served by ``HTTPProtocol``)."""
    transport = _TRANSPORT.get()
    if transport is None or transport.is_closing():
        return False
    transport.abort()
    return True


def connection_cap(configured: int | None) -> int:
    """``max_connections`` as applied: by default half the file-descriptor limit, and never
    so close to it that the server could not open its storage or call a model."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no such limit (Windows)
        return configured or 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    ceiling = max(16, soft - _FD_RESERVE)
    if configured is None:
        return max(16, soft // 2)
    if configured > ceiling:
        logger.warning(
            "max_connections = %d does not fit the file-descriptor limit (%d): using %d",
            configured,
            soft,
            ceiling,
        )
        return ceiling
    return configured


@dataclass(slots=True)
class ConnectionLimits:
    """What one server's connections may do (shared by all of them)."""

    head_timeout: float = 10.0
    max_head_bytes: int = 32_768
    max_connections: int = 512
    refused: int = 0  # connections refused since the last log line
    logged_at: float = -math.inf

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(
            head_timeout=server.head_timeout_seconds,
            max_head_bytes=server.max_head_bytes,
            max_connections=connection_cap(server.max_connections),
        )

    def note_refused(self, open_connections: int) -> None:
        """Count a refused connection; log at most one line every few seconds (a flood of
        connections must not become a flood of log lines)."""
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= _WARN_EVERY:
            logger.warning(
                "refused %d connection(s) with 503: %d are open and max_connections is %d",
                self.refused,
                open_connections,
                self.max_connections,
            )
            self.refused = 0
            self.logged_at = now


_default_limits: ConnectionLimits | None = None


def _limits_of(app_state: dict[str, Any]) -> ConnectionLimits:
    global _default_limits
    limits = app_state.get(LIMITS_KEY)
    if isinstance(limits, ConnectionLimits):
        return limits
    if _default_limits is None:  # serving another app: the documented defaults
        _default_limits = ConnectionLimits.from_settings(ServerSettings())
    return _default_limits


class _Guard(_ProtocolBase):
    """The limits, on top of one of uvicorn's HTTP/1.1 protocols (httptools or h11).

    Both keep the request being served in ``self.cycle`` and replace it when a new head has
    been parsed; ``cycle.more_body`` is true while that request's body is still coming. So a
    head is awaited while ``cycle`` is the one seen when the deadline was armed and it is done
    (or there is none yet).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        app_state[PROTOCOL_KEY] = True
        self._limits = _limits_of(app_state)
        self._deadline: asyncio.TimerHandle | None = None
        self._armed_cycle: Any = None
        self._head_bytes = 0
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._limits.note_refused(len(self.connections))
            self._answer(
                503,
                "too_many_connections",
                "the server has too many open connections; try again shortly",
                retryable=True,
                headers=[(b"retry-after", b"1")],
                linger=False,  # the descriptor is what is scarce
            )
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # after an error answer: read and drop what the client still sends
        cycle = self.cycle
        if cycle is None or not cycle.more_body:  # these bytes are (part of) a head
            self._head_bytes += len(data)
        _TRANSPORT.set(self.transport)
        super().data_received(data)
        if self.cycle is not cycle:  # a head was parsed
            self._head_bytes = 0
        elif self._head_bytes > self._limits.max_head_bytes and not self._finished:
            self._answer(
                431,
                "request_head_too_large",
                f"the request line and headers are larger than {self._limits.max_head_bytes} bytes",
            )

    def on_response_complete(self) -> None:
        # Armed before uvicorn starts a pipelined request, which then counts as a head that came.
        if not self._finished:
            self._arm()
        super().on_response_complete()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._disarm()  # the connection now belongs to the WebSocket protocol
        super().handle_websocket_upgrade(*args)

    def send_400_response(self, msg: str) -> None:
        self._answer(
            400,
            "bad_http_request",
            "the request is not valid HTTP/1.1 (request line, a header, Content-Length or "
            "chunked encoding)",
        )

    @property
    def _finished(self) -> bool:
        """Whether the connection is closing (or answered an error and waits to close)."""
        return self._lingering or self.transport.is_closing()

    # -- the deadline ---------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._armed_cycle = self.cycle
        self._deadline = self.loop.call_later(self._limits.head_timeout, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self._finished or cycle is not self._armed_cycle:
            return  # a head came in time; the end of its answer arms the deadline again
        if cycle is not None and not cycle.response_complete:
            return  # a pipelined request is being answered
        if self._head_bytes:
            self._answer(
                408,
                "request_timeout",
                f"the request line and headers did not arrive within "
                f"{self._limits.head_timeout:g} s",
            )
        else:
            self.transport.close()

    def _answer(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        headers: list[tuple[bytes, bytes]] | None = None,
        linger: bool = True,
    ) -> None:
        """Send an error answer of the documented shape and close the connection (once the
        answer under way on it, if any, is sent: that one is not cut, nor is ours mixed in).

        With ``linger``, the connection is closed in two steps, as RFC 9112 (9.6) advises:
        our side first, then the socket, once the client closes its side (uvicorn closes on
        end of file) or after a few seconds. Closing the socket at once while the client is
        still sending would make the client's system drop the answer with a reset.
        """
        cycle = self.cycle
        self._disarm()
        if cycle is not None and not cycle.response_complete:
            # Bad bytes after a request: answer that one (as uvicorn does at shutdown), then close.
            self._lingering = True
            cycle.keep_alive = False
            return
        body = error_json(code, message, retryable=retryable)
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        fields = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *(headers or []),
        ]
        lines += [name + b": " + value + b"\r\n" for name, value in fields]
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        if linger and self.transport.can_write_eof():
            self._lingering = True
            self.transport.write_eof()
            self.loop.call_later(_LINGER, self.transport.close)
        else:
            self.transport.close()


def guarded(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """``base`` (one of uvicorn's HTTP/1.1 protocol classes) with the connection limits."""
    return type(f"Guarded{base.__name__}", (_Guard, base), {"__module__": __name__})


HTTPProtocol = guarded(AutoHTTPProtocol)
HTTPProtocol.__doc__ = """uvicorn's HTTP protocol (httptools, else h11) with chat-shell's
connection limits: pass it as ``uvicorn --http chat_shell_http:HTTPProtocol``."""
