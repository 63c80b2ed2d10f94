"""The HTTP side of the OpenAI-protocol backend, on aiohttp (imported only when a model is
called, never by ``import chat_shell``).

One ``aiohttp.ClientSession`` per event loop and backend: its pool keeps idle connections for
4 s (under the 5 s idle timeout of uvicorn, Node …) with no limit on concurrent ones. A request
that a kept-alive connection lost before any byte of answer is sent once more (the server
closed it while idle; the request was never answered). Redirects are followed as the official
SDK (httpx) follows them, compressed bodies decoded as they stream, proxies chosen per
``_proxies`` and certificates checked per ``_tls``. aiohttp's failures become ``ModelError``
with a message that names the cause and never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import ssl
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import ModelError
from .proxies import proxy_for
from .tls import TrustError, trust_context

if TYPE_CHECKING:
    import aiohttp

    from .backend import ModelRequest

__all__ = ["MAX_REDIRECTS", "Transport", "transport_error"]

MAX_REDIRECTS = 20  # httpx's (so the SDK's) limit
_KEEPALIVE_SECONDS = 4.0
_LARGE_BODY = 1 << 20  # bytes; aiohttp warns about larger bodies given as bytes
_STALE_RETRIES = 2  # sends of a request that idle connections lost unanswered, before giving up


@dataclass(slots=True)
class _Attempt:
    """What aiohttp's tracing tells about one request (``trace_request_ctx``)."""

    reused: bool = False


async def _on_reuse(session: Any, context: SimpleNamespace, params: Any) -> None:
    context.trace_request_ctx.reused = True


def _user_agent() -> str:
    import chat_shell

    return f"chat-shell/{chat_shell.__version__}"


class Transport:
    """Sessions (per event loop), TLS contexts (per CA bundle and environment) and the request
    itself."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._closers: dict[asyncio.AbstractEventLoop, Any] = {}
        self._trust: dict[tuple[str | None, ...], ssl.SSLContext] = {}
        self._user_agent: str | None = None

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._sessions[loop] = self._new_session()
            self._close_with(loop, session)
        return session

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._user_agent is None:
            self._user_agent = _user_agent()
        tracing = aiohttp.TraceConfig()
        tracing.on_connection_reuseconn.append(_on_reuse)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_SECONDS),
            headers={"User-Agent": self._user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # proxies are ours to choose (NO_PROXY networks and ports)
            trace_configs=[tracing],
        )

    def _close_with(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
        """Close ``session`` when its loop shuts down, if nobody called ``aclose()`` first.

        A loop's asynchronous generators are closed, inside the loop, by ``asyncio.run()``
        before it closes the loop; this generator's ``finally`` closes the session there, so
        that a backend used in one ``asyncio.run()`` after another leaves no socket behind in
        a dead loop.
        """

        async def closer() -> Any:
            try:
                yield
            finally:
                if self._sessions.get(loop) is session:
                    del self._sessions[loop]
                if self._closers.get(loop) is generator:
                    del self._closers[loop]
                await session.close()

        generator = closer()
        self._closers[loop] = generator
        # started (so the loop tracks it) at once: the first step only reaches the yield
        with contextlib.suppress(StopIteration):
            generator.asend(None).send(None)

    async def aclose(self) -> None:
        """Close this loop's session (the others close with their loops)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        closer = self._closers.pop(loop, None)
        if closer is not None:
            await closer.aclose()
        elif session is not None:
            await session.close()

    def trust(self, ca_bundle: str | None) -> ssl.SSLContext:
        key = (ca_bundle, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        context = self._trust.get(key)
        if context is None:
            context = self._trust[key] = trust_context(ca_bundle)
        return context

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], request: ModelRequest, where: str
    ) -> aiohttp.ClientResponse:
        """Send the request; the answer with its head read and its body not. Transport
        failures raise ``ModelError``."""
        import aiohttp

        parts = urlsplit(url)
        proxy = proxy_for(parts.scheme, parts.hostname or "", parts.port or _port(parts.scheme))
        if proxy is not None:
            try:
                proxy_parts = urlsplit(proxy)
                proxy_parts.port  # noqa: B018 - raises ValueError for a bad one
            except ValueError:
                raise ModelError(f"{where}: the proxy's URL is not valid") from None
            if proxy_parts.scheme not in ("http", "https"):
                raise ModelError(
                    f"{where}: unsupported proxy {proxy_parts.scheme}://… "
                    "(use an http or https proxy)"
                )
            if not proxy_parts.hostname:
                raise ModelError(
                    f"{where}: the proxy is not an http:// or https:// URL with a host"
                )
        # aiohttp checks an https:// proxy's certificate with the request's context too. A
        # plain-HTTP request through no TLS proxy needs none (and skips building one).
        context: ssl.SSLContext | bool = True
        if parts.scheme == "https" or (proxy or "").startswith("https:"):
            try:
                context = self.trust(request.ca_bundle)
            except TrustError as exc:
                raise ModelError(f"{where}: {exc}") from None
        # No total: aiohttp would then run a timer context around every read. The backend
        # bounds the whole request itself; the first byte and each silence are bounded too.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=request.connect_timeout, sock_connect=request.connect_timeout
        )
        session = self._session()
        for attempt in range(_STALE_RETRIES + 1):
            traced = _Attempt()
            try:
                return await session.post(
                    url,
                    # a large body goes out in pieces, yielding to the loop between them
                    data=io.BytesIO(body) if len(body) > _LARGE_BODY else body,
                    headers=headers,
                    proxy=proxy,
                    ssl=context,
                    timeout=timeout,
                    max_redirects=MAX_REDIRECTS,
                    trace_request_ctx=traced,
                )
            except aiohttp.ClientConnectorError:
                raise
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # An idle connection the server had closed: the request was never answered.
                # (A disconnect after part of a head carries that part as its message.)
                unheard = not isinstance(exc, aiohttp.ServerDisconnectedError) or isinstance(
                    exc.message, str
                )
                if traced.reused and unheard and attempt < _STALE_RETRIES:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover


def _port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def transport_error(exc: BaseException, where: str, request: ModelRequest) -> ModelError:
    """The ``ModelError`` for a failure of aiohttp (or of the socket under it)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause
        return ModelError(
            f"{where}: the server's TLS certificate is not trusted ({reason}); trust its CA "
            "with the model's ca_bundle, SSL_CERT_FILE or the system's certificate store",
            retryable=False,
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        reason = getattr(exc.os_error, "reason", None) or exc.os_error
        return ModelError(f"{where}: the TLS handshake failed ({reason})", retryable=False)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ModelError(
            f"{where}: cannot connect to the proxy ({_os_reason(exc.os_error)})", retryable=True
        )
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        from .openai_backend import is_retryable_status

        return ModelError(
            f"{where}: the proxy refused the tunnel (HTTP {exc.status})",
            retryable=is_retryable_status(exc.status),
            status_code=exc.status,
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ModelError(
            f"{where}: timed out connecting (connect_timeout {request.connect_timeout:g} s)",
            retryable=True,
        )
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return ModelError(
            f"{where}: timed out: no data for {request.read_timeout:g} s (read_timeout)",
            retryable=True,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ModelError(f"{where}: cannot connect ({_os_reason(exc.os_error)})", retryable=True)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return ModelError(f"{where}: more than {MAX_REDIRECTS} redirects", retryable=False)
    if isinstance(exc, aiohttp.RedirectClientError):
        return ModelError(f"{where}: redirected to a URL that is not http(s)", retryable=False)
    if isinstance(exc, aiohttp.InvalidURL):
        return ModelError(f"{where}: api_base must be an http:// or https:// URL")
    if _cannot_decode(exc):  # the same server would compress the same way again
        return ModelError(
            f"{where}: cannot decode the answer ({_payload_reason(exc)})", retryable=False
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ModelError(f"{where}: connection failed (the server closed it)", retryable=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ModelError(
            f"{where}: connection failed (the answer broke off: {_payload_reason(exc)})",
            retryable=True,
        )
    if isinstance(exc, aiohttp.ClientResponseError):  # a head aiohttp could not parse
        return ModelError(
            f"{where}: connection failed (not a valid HTTP answer: {exc.message})",
            retryable=True,
        )
    if isinstance(exc, OSError):
        return ModelError(f"{where}: connection failed ({_os_reason(exc)})", retryable=True)
    return ModelError(f"{where}: connection failed ({type(exc).__name__})", retryable=True)


def _os_reason(error: OSError) -> str:
    return str(error.strerror or error)


def _payload_reason(exc: BaseException) -> str:
    cause = exc.__cause__
    text = str(getattr(cause, "message", "") or cause or getattr(exc, "message", "") or exc)
    return text.split(". ", 1)[0][:200]


def _cannot_decode(exc: BaseException) -> bool:
    """A body in a Content-Encoding aiohttp cannot (or could not) decode."""
    import aiohttp

    if not isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return False
    cause = exc.__cause__
    text = f"{getattr(exc, 'message', '')} {getattr(cause, 'message', '')}"
    return "content-encoding" in text.lower()
