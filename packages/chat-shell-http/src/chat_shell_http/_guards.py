"""Who may reach the server at all, checked before anything else runs on a request.

- A server without API keys serves this machine only. The configured host says little (``uvicorn
  --factory … --host 0.0.0.0`` never tells the app), so each request is checked against the
  socket it really came through: its local address must be a loopback one, and the listening
  socket of its port must not be bound beyond loopback (looked up once per port). Otherwise
  every request gets 503 ``insecure_bind`` and the log says why.
- The Host header: with ``allowed_hosts`` only those names; without it, a server without API
  keys accepts only loopback names, so a web page whose name was rebound to 127.0.0.1 (DNS
  rebinding) cannot use it. Refused with 400 ``host_not_allowed``.
"""

from __future__ import annotations

import asyncio
import logging
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from ._connections import PROTOCOL_KEY
from ._errors import send_error
from ._settings import ServerSettings, is_loopback

__all__ = ["AccessGuard", "HostPolicy", "exposed_listener", "host_name"]

logger = logging.getLogger("chat_shell_http")

_NAME = re.compile(r"[a-z0-9\-._~%!$&'()*+,;=]+")
_ADDRESS6 = re.compile(r"[0-9a-f:.]+")
_PORT = re.compile(r"(:[0-9]*)?")


def host_name(value: str) -> str | None:
    """The name in a Host header, lower case, without port, brackets or final dot
    (``"[::1]:8000"`` → ``"::1"``); ``None`` if it is not a valid Host value."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or not _ADDRESS6.fullmatch(name):
            return None
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
        name = name.removesuffix(".")
        if not _NAME.fullmatch(name):
            return None
    if not _PORT.fullmatch(rest):
        return None
    return name


class HostPolicy:
    """Which Host headers a server answers."""

    def __init__(self, server: ServerSettings) -> None:
        self.patterns = [self._pattern(item) for item in server.allowed_hosts]
        keyless = not server.auth_enabled and not server.insecure_no_auth
        self.loopback_only = not self.patterns and keyless
        self.enabled = bool(self.patterns) or self.loopback_only

    @staticmethod
    def _pattern(item: str) -> str:
        item = item.strip().lower()
        if item == "*" or item.startswith("*."):
            return item.removesuffix(".")
        return host_name(item) or item

    def allows(self, header: str | None) -> bool:
        if not self.enabled:
            return True
        if header is None:  # HTTP/1.0 without Host: no browser sends that
            return self.loopback_only
        name = host_name(header)
        if name is None:
            return False
        if self.loopback_only:
            return is_loopback(name)
        return any(
            pattern in ("*", name) or (pattern.startswith("*.") and name.endswith(pattern[1:]))
            for pattern in self.patterns
        )


def exposed_listener(port: int | None) -> str | None:
    """An address beyond loopback on which this process listens (on ``port``), if any."""
    import psutil

    for conn in psutil.Process().net_connections(kind="inet"):
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        address, listening = conn.laddr.ip, conn.laddr.port
        if (port is None or listening == port) and not is_loopback(address):
            return f"[{address}]:{listening}" if ":" in address else f"{address}:{listening}"
    return None


class AccessGuard:
    """The checks above, as the outermost ASGI middleware: a refused request touches nothing."""

    def __init__(self, app: ASGIApp, server: ServerSettings) -> None:
        self.app = app
        self.keyless = not server.auth_enabled and not server.insecure_no_auth
        self.hosts = HostPolicy(server)
        self._listeners: dict[int | None, str | None] = {}
        self._warned_exposed = False
        self._checked_protocol = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._checked_protocol:
            self._checked_protocol = True
            if PROTOCOL_KEY not in scope.get("state", {}):
                logger.warning(
                    "connection limits are off (no deadline for request heads, no cap on "
                    "connections): serve with `chat-shell serve`, or give uvicorn "
                    "`--http chat_shell_http:HTTPProtocol`"
                )
        if self.keyless:
            exposed = await self._exposed(scope)
            if exposed is not None:
                message = (
                    f"this server has no API keys and listens on {exposed}, beyond this "
                    "machine: it answers nothing until it gets API keys ([server] api_keys, "
                    "CHAT_SHELL_API_KEYS) or listens on 127.0.0.1 only (insecure_no_auth: "
                    "something in front of it authenticates)"
                )
                if not self._warned_exposed:
                    self._warned_exposed = True
                    logger.error("refusing every request: %s", message)
                await self._refuse(scope, send, 503, "insecure_bind", message)
                return
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        if not self.hosts.allows(None if host is None else host.decode("latin-1")):
            await self._refuse(
                scope,
                send,
                400,
                "host_not_allowed",
                "this server does not answer for that Host name"
                + (
                    " (without API keys: localhost, 127.0.0.1 or [::1] only, so that a web page "
                    "cannot reach it by DNS rebinding)"
                    if self.hosts.loopback_only
                    else ""
                )
                + "; list the names it is reached by in [server] allowed_hosts",
            )
            return
        await self.app(scope, receive, send)

    async def _exposed(self, scope: Scope) -> str | None:
        """Where this request's server is reachable beyond loopback, if it is."""
        server = scope.get("server")
        port: int | None = None
        if server is not None:
            address, port = server[0], server[1]
            if port is None:
                return None  # a Unix socket: this machine only
            if not is_loopback(address):
                return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        if port not in self._listeners:
            try:
                self._listeners[port] = await asyncio.to_thread(exposed_listener, port)
            except Exception as exc:  # the sockets cannot be listed here: local address only
                logger.warning("cannot list this process's sockets (%s)", exc)
                self._listeners[port] = None
        return self._listeners[port]

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(send, status, code, message)
