"""The lean OpenAI-protocol streaming client (OpenAI and every compatible server), on httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._errors import ModelError
from ._model_backend import ChunkAccumulator, ModelBackend, ModelPart, ModelRequest

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIBackend", "describe_http_error", "is_retryable_status"]

DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_MAX_ERROR_TEXT = 300


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


class OpenAIBackend(ModelBackend):
    """Streams ``POST {api_base}/chat/completions`` with one pooled ``httpx.AsyncClient``."""

    def __init__(self) -> None:
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def client(self, secure: bool) -> httpx.AsyncClient:
        """A pooled client; plain-HTTP endpoints (local servers) skip loading CA certificates,
        which costs ~0.2 s."""
        client = self._clients.get(secure)
        if client is None:
            import httpx  # lazily: with click/rich installed, importing httpx costs ~0.3 s

            client = self._clients[secure] = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
                verify=secure,
            )
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def _body(self, request: ModelRequest) -> dict[str, Any]:
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
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]:
        import httpx

        base = (request.api_base or DEFAULT_OPENAI_BASE).rstrip("/")
        headers = {"Accept": "text/event-stream"}
        if request.api_key:
            headers["Authorization"] = f"Bearer {request.api_key}"
        timeout = httpx.Timeout(request.timeout, connect=min(10.0, request.timeout))
        accumulator = ChunkAccumulator()
        done = False
        where = f"{request.model} at {base}"
        try:
            async with self.client(base.startswith("https:")).stream(
                "POST",
                f"{base}/chat/completions",
                json=self._body(request),
                headers=headers,
                timeout=timeout,
            ) as response:
                if response.status_code >= 400:
                    body = await response.aread()
                    problem = describe_http_error(response.status_code, body, request.api_key)
                    raise ModelError(
                        f"{where}: {problem}",
                        retryable=is_retryable_status(response.status_code),
                        status_code=response.status_code,
                    )
                feed = accumulator.feed
                loads = json.loads
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
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
        except httpx.TimeoutException as exc:
            raise ModelError(f"{where}: timed out", retryable=True) from exc
        except httpx.ConnectError as exc:
            raise ModelError(f"{where}: cannot connect", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise ModelError(
                f"{where}: connection failed ({type(exc).__name__})", retryable=True
            ) from exc
        if not (done or accumulator.finished):
            raise ModelError(f"{where}: the stream ended before the answer did", retryable=True)
        for part in accumulator.finish():
            yield part
