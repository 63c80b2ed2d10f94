"""The lean OpenAI-protocol streaming client (OpenAI and every compatible server).

It POSTs through chat-shell's small HTTP/1.1 client (``_http11``) over kept-alive connections and
splits the SSE stream itself. TLS trusts what httpx trusts (``SSL_CERT_FILE``, ``SSL_CERT_DIR``,
else certifi's bundle); ``HTTP(S)_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` are honoured.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._errors import ModelError
from ._model_backend import ChunkAccumulator, ModelBackend, ModelPart, ModelRequest
from ._providers import is_openai_reasoning_model

if TYPE_CHECKING:
    from ._http11 import HTTPClient, Origin

__all__ = ["OpenAIBackend", "describe_http_error", "is_retryable_status", "tls_context"]

DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_MAX_ERROR_TEXT = 300
_MAX_LINE = 16 << 20  # one SSE line (one chunk of the answer) may not be longer
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


def tls_context() -> ssl.SSLContext:
    """Verified TLS trusting what httpx would: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set,
    else certifi's CA bundle."""
    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _proxy_for(origin: Origin) -> str | None:
    """The proxy URL the environment names for ``origin`` (``https_proxy``, ``all_proxy``,
    ``no_proxy``, either case)."""
    import urllib.request

    proxies = urllib.request.getproxies()
    proxy = proxies.get(origin.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(origin.host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _new_client(origin: Origin, where: str) -> HTTPClient:
    from ._http11 import HTTPClient

    proxy = _proxy_for(origin)
    if proxy is not None and not proxy.startswith(("http://", "https://")):
        scheme = proxy.split("://", 1)[0]
        raise ModelError(f"{where}: unsupported proxy {scheme}://… (use an http or https proxy)")
    return HTTPClient(
        origin,
        ssl_context=tls_context() if origin.scheme == "https" else None,
        proxy=proxy,
        proxy_ssl_context=tls_context() if proxy and proxy.startswith("https://") else None,
    )


async def _sse_data(chunks: AsyncIterator[bytes], where: str) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of an SSE byte stream, ``[DONE]`` included."""
    pending = b""
    async for chunk in chunks:
        if pending:
            chunk = pending + chunk
        *lines, pending = chunk.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
        if len(pending) > _MAX_LINE:
            raise ModelError(f"{where}: a stream line longer than {_MAX_LINE} bytes")
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


class OpenAIBackend(ModelBackend):
    """Streams ``POST {api_base}/chat/completions`` over pooled connections (a pool per
    endpoint, through the proxy the environment names for it)."""

    def __init__(self) -> None:
        self._clients: dict[Origin, HTTPClient] = {}

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()

    def _body(self, request: ModelRequest) -> bytes:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = request.tools
        reasoning = is_openai_reasoning_model(request.model)
        if request.temperature is not None and not (reasoning and request.temperature != 1):
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
        return json.dumps(body, ensure_ascii=False).encode()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]:
        from ._http11 import ConnectFailed, HTTPError, Origin, TimedOut

        base = (request.api_base or DEFAULT_OPENAI_BASE).rstrip("/")
        url = f"{base}/chat/completions"
        where = f"{request.model} at {base}"
        try:
            origin = Origin.of(url)
        except ValueError:
            raise ModelError(f"{where}: api_base must be an http:// or https:// URL") from None
        headers = [
            ("Accept", "text/event-stream"),
            ("Accept-Encoding", "identity"),
            ("Content-Type", "application/json"),
        ]
        if request.api_key:
            headers.append(("Authorization", f"Bearer {request.api_key}"))
        accumulator = ChunkAccumulator(where, request.api_key)
        done = False
        try:
            client = self._clients.get(origin)
            if client is None:
                client = self._clients[origin] = _new_client(origin, where)
            async with client.stream(
                "POST",
                url,
                headers=headers,
                body=self._body(request),
                connect_timeout=min(10.0, request.timeout),
                timeout=request.timeout,
            ) as response:
                if response.status >= 400:
                    body = await response.read()
                    problem = describe_http_error(response.status, body, request.api_key)
                    raise ModelError(
                        f"{where}: {problem}",
                        retryable=is_retryable_status(response.status),
                        status_code=response.status,
                    )
                feed = accumulator.feed
                loads = json.loads
                chunks = response.stream()
                async for payload in _sse_data(chunks, where):
                    if payload == b"[DONE]":
                        done = True
                        break
                    try:
                        chunk = loads(payload)
                    except ValueError as exc:
                        raise ModelError(f"{where}: malformed stream data", retryable=True) from exc
                    for part in feed(chunk):
                        yield part
                if done:
                    await _drain(chunks)
        except TimedOut as exc:
            raise ModelError(f"{where}: timed out", retryable=True) from exc
        except ConnectFailed as exc:
            raise ModelError(f"{where}: cannot connect ({exc})", retryable=True) from exc
        except HTTPError as exc:
            raise ModelError(f"{where}: connection failed ({exc})", retryable=True) from exc
        except ValueError as exc:  # a proxy URL or a header value the client cannot use
            raise ModelError(f"{where}: {exc}") from exc
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
