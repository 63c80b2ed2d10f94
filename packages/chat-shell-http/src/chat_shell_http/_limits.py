"""Request limits (431, 413, 415, 400) and the per-key rate limit (429 with Retry-After)."""

from __future__ import annotations

import math
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import ApiError, send_error

_LENGTH = re.compile(rb"[0-9]{1,18}")

__all__ = ["RateLimiter", "RequestLimits"]


class RateLimiter:
    """A token bucket per principal: ``per_minute`` requests a minute, bursts up to that."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str | None, tuple[float, float]] = {}

    def check(self, key: str | None) -> None:
        """Take one token for ``key``; ``ApiError(429)`` with Retry-After if there is none."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / rate))
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests: the limit is {self.per_minute} a minute per API key",
                retryable=True,
                headers={"Retry-After": str(wait)},
            )
        self._buckets[key] = (tokens - 1.0, now)


def _head_size(scope: Scope) -> int:
    """About the size of the request line and headers as they were sent."""
    size = len(scope["method"]) + len(scope.get("raw_path") or b"") + len(scope["query_string"])
    return size + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 16


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replay


class RequestLimits:
    """Refuses, before the body is read whole, a request the API will not read: a head larger
    than ``max_head_bytes`` (431; ``HTTPProtocol`` also stops one that is still arriving), a
    body larger than ``max_bytes`` (413), a compressed body (415: bodies are plain JSON), or a
    ``Content-Length`` that is not one plain decimal number (400; uvicorn's parsers refuse most
    such heads themselves)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_head_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_head_bytes = max_head_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _head_size(scope) > self.max_head_bytes:
            await send_error(
                send,
                431,
                "request_head_too_large",
                f"the request line and headers are larger than {self.max_head_bytes} bytes",
            )
            return
        lengths = []
        for name, value in scope["headers"]:
            if name == b"content-length":
                lengths.append(value)
            elif name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                await send_error(
                    send,
                    415,
                    "unsupported_content_encoding",
                    "request bodies are not compressed here: send them without Content-Encoding",
                    headers=[(b"accept-encoding", b"identity")],
                )
                return
        if lengths:
            if any(not _LENGTH.fullmatch(v) for v in lengths) or len(set(lengths)) > 1:
                await send_error(
                    send, 400, "bad_content_length", "Content-Length must be one decimal number"
                )
                return
            if int(lengths[0]) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        # A body of unknown length (chunked) is read here, up to the limit, and replayed.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                # Read (and drop) a bounded rest first, so the client can read the answer.
                while message.get("more_body", False) and size < 8 * self.max_bytes + 1_048_576:
                    message = await receive()
                    size += len(message.get("body", b""))
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "request_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
        )
