"""The lean OpenAI-protocol streaming client (OpenAI and every compatible server).

It speaks HTTP/1.1 through httpcore (httpx's transport layer) on an asyncio-native network
backend, and parses the SSE stream itself: per streamed token that is a fraction of what
``httpx.AsyncClient`` costs, which is what an HTTP server relaying hundreds of streams needs.
TLS settings come from ``httpx.create_ssl_context()`` (certifi, ``SSL_CERT_FILE``,
``SSL_CERT_DIR``); ``HTTP(S)_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` are honoured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ._errors import ModelError
from ._model_backend import ChunkAccumulator, ModelBackend, ModelPart, ModelRequest

if TYPE_CHECKING:
    from ._connections import ConnectionPool

__all__ = ["OpenAIBackend", "describe_http_error", "is_retryable_status"]

DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_MAX_ERROR_TEXT = 300
_DRAIN_SECONDS = 1.0  # after [DONE]: wait this long for the body's end, to reuse the connection


def is_retryable_status(status: int) -> bool:
    return status in (408, 409, 425, 429) or status >= 500


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "****")
    return text[:_MAX_ERROR_TEXT]


def describe_http_error(status: int, body: bytes, api_key: str | None) -> str:
    """A short description of an error answer, with the provider's message but never the key."""
    detail = ""
    try:
        payload = json.loads(body)
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
    except ValueError:
        detail = body.decode("utf-8", "replace")
    detail = _redact(str(detail).strip(), api_key)
    return f"HTTP {status}" + (f": {detail}" if detail else "")


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment asks for (``https_proxy``, ``all_proxy``, ``no_proxy``)."""
    import urllib.request

    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def _new_pool(secure: bool, proxy: str | None) -> ConnectionPool:
    import httpcore
    import httpx  # for the TLS context only: the same certificates and settings as httpx

    from ._connections import AsyncioNetworkBackend, ConnectionPool

    ssl_context = httpx.create_ssl_context() if secure else None
    if proxy is None:
        return ConnectionPool(ssl_context)
    url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ModelError(f"unsupported proxy {url.scheme}://… (use an http or https proxy)")
    auth = (unquote(url.username), unquote(url.password or "")) if url.username else None
    port = url.port or (443 if url.scheme == "https" else 80)
    proxied = httpcore.AsyncHTTPProxy(
        proxy_url=f"{url.scheme}://{url.hostname}:{port}",
        proxy_auth=auth,
        ssl_context=ssl_context,
        proxy_ssl_context=httpx.create_ssl_context() if url.scheme == "https" else None,
        max_connections=1000,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=AsyncioNetworkBackend(),
    )
    return ConnectionPool(ssl_context, proxy=proxied)


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of an SSE byte stream, ``[DONE]`` included."""
    pending = b""
    async for chunk in chunks:
        if pending:
            chunk = pending + chunk
        *lines, pending = chunk.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


class OpenAIBackend(ModelBackend):
    """Streams ``POST {api_base}/chat/completions`` over pooled connections (a pool per
    scheme and host, through the proxy the environment names for it)."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int | None], ConnectionPool] = {}

    def _pool(self, scheme: str, host: str, port: int | None) -> ConnectionPool:
        pool = self._pools.get((scheme, host, port))
        if pool is None:
            proxy = _proxy_for(scheme, host)
            pool = self._pools[(scheme, host, port)] = _new_pool(scheme == "https", proxy)
        return pool

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.aclose()

    def _body(self, request: ModelRequest) -> bytes:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = request.tools
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        return json.dumps(body, ensure_ascii=False).encode()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]:
        import httpcore

        base = (request.api_base or DEFAULT_OPENAI_BASE).rstrip("/")
        url = f"{base}/chat/completions"
        where = f"{request.model} at {base}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelError(f"{where}: api_base must be an http:// or https:// URL")
        body = self._body(request)
        headers = [
            (b"Host", parts.netloc.rpartition("@")[2].encode("idna")),
            (b"Accept", b"text/event-stream"),
            (b"Accept-Encoding", b"identity"),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
        ]
        if request.api_key:
            headers.append((b"Authorization", f"Bearer {request.api_key}".encode()))
        seconds = request.timeout
        timeout = {
            "connect": min(10.0, seconds),
            "read": seconds,
            "write": seconds,
            "pool": seconds,
        }
        accumulator = ChunkAccumulator()
        done = False
        try:
            pool = self._pool(parts.scheme, parts.hostname, port)
            outgoing = httpcore.Request(
                "POST",
                url,
                headers=headers,
                content=body,
                extensions={"timeout": timeout},
            )
            async with pool.stream(outgoing) as response:
                if response.status >= 400:
                    body = await response.aread()
                    problem = describe_http_error(response.status, body, request.api_key)
                    raise ModelError(
                        f"{where}: {problem}",
                        retryable=is_retryable_status(response.status),
                        status_code=response.status,
                    )
                feed = accumulator.feed
                loads = json.loads
                chunks = response.aiter_stream()
                async for payload in _sse_data(chunks):
                    if payload == b"[DONE]":
                        done = True
                        break
                    try:
                        chunk = loads(payload)
                    except ValueError as exc:
                        raise ModelError(f"{where}: malformed stream data", retryable=True) from exc
                    if "error" in chunk:
                        error = chunk["error"]
                        message = error.get("message", "") if isinstance(error, dict) else error
                        raise ModelError(
                            f"{where}: {_redact(str(message), request.api_key)}", retryable=False
                        )
                    for part in feed(chunk):
                        yield part
                if done:
                    await _drain(chunks)
        except httpcore.TimeoutException as exc:
            raise ModelError(f"{where}: timed out", retryable=True) from exc
        except httpcore.ConnectError as exc:
            raise ModelError(f"{where}: cannot connect", retryable=True) from exc
        except (
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.ProxyError,
            httpcore.UnsupportedProtocol,
        ) as exc:
            raise ModelError(
                f"{where}: connection failed ({type(exc).__name__})", retryable=True
            ) from exc
        if not (done or accumulator.finished):
            raise ModelError(f"{where}: the stream ended before the answer did", retryable=True)
        for part in accumulator.finish():
            yield part


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (the body's end, at once from a sound server) so that the
    connection goes back to the pool; a server that lingers only loses its connection."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except Exception:  # the answer is complete; the connection is simply not reused
        return
