"""The lean OpenAI-protocol streaming client (OpenAI and every compatible server).

It POSTs ``{api_base}/chat/completions`` through aiohttp (``_openai_transport``) and splits the
SSE stream itself (``_sse``), feeding the chunks to the parser both backends share. An answer
that is not a stream is read for what it is: a whole ``chat.completion`` (a server that ignored
``stream: true``) gives the same parts; NDJSON lines of chunks are read like events; an error
document or an HTML page is a ``ModelError`` naming the status and the content type.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .._errors import ModelError
from .backend import (
    ChunkAccumulator,
    ModelBackend,
    ModelPart,
    ModelRequest,
    parse_retry_after,
    stream_error,
)
from .providers import is_openai_reasoning_model
from .sse import MAX_SIZE, LineSplitter, SSEError, SSEParser

if TYPE_CHECKING:
    import aiohttp

    from .transport import Transport

__all__ = ["OpenAIBackend", "describe_http_error", "is_retryable_status"]

DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
_MAX_ERROR_TEXT = 300
_MAX_ERROR_BODY = 1 << 20  # bytes of an error answer read for its message
_DRAIN_SECONDS = 1.0  # after [DONE]: wait this long for the body's end, to reuse the connection
_NDJSON = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/jsonlines",
}
_HTML = {"text/html", "application/xhtml+xml"}
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads_object(payload: bytes) -> Any:
    """``json.loads`` of an event's data that starts with ``{``, without its encoding sniffing
    and its two whitespace matches (half of the cost of parsing a token's chunk): SSE is UTF-8
    by definition."""
    text = payload.decode()
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text) and text[end:].strip():
        raise ValueError("extra data after the JSON value")
    return value


def is_retryable_status(status: int) -> bool:
    return status in (408, 409, 425, 429) or status >= 500


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "****")
    return text[:_MAX_ERROR_TEXT]


def _detail(payload: Any) -> str:
    """The message of an error document (``{"error": {"message": …}}``, ``{"detail": …}``, …)."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        for key in ("message", "detail", "error", "msg"):
            if isinstance(error.get(key), str) and error[key]:
                return str(error[key])
        return json.dumps(error)[:_MAX_ERROR_TEXT]
    return str(error)


def describe_http_error(
    status: int, body: bytes, api_key: str | None, content_type: str = ""
) -> str:
    """A short description of an error answer, with the provider's message but never the key:
    a JSON error's message, an HTML page's title, or the start of the text."""
    if content_type in _HTML or body.lstrip()[:1] == b"<":
        title = _TITLE.search(body)
        text = (title.group(1) if title else body[:2000]).decode("utf-8", "replace")
        detail = " ".join(_TAG.sub(" ", text).split())
    else:
        try:
            detail = _detail(json.loads(body))
        except ValueError:
            detail = body.decode("utf-8", "replace")
    detail = _redact(" ".join(detail.split()), api_key)
    kind = f" ({content_type})" if content_type else ""
    return f"HTTP {status}{kind}" + (f": {detail}" if detail else "")


def _as_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` (each choice with a whole ``message``) as one streamed chunk."""
    choices = [
        {**choice, "delta": choice.get("message") or {}}
        for choice in completion.get("choices") or []
        if isinstance(choice, dict)
    ]
    return {**completion, "choices": choices}


def _public(base: str) -> str:
    """``base`` without credentials in its authority (``https://user:pw@host`` → ``host``)."""
    parts = urlsplit(base)
    if parts.username is None and parts.password is None:
        return base
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class OpenAIBackend(ModelBackend):
    """Streams ``POST {api_base}/chat/completions`` over pooled connections (one aiohttp
    session per event loop, through the proxy the environment names)."""

    def __init__(self) -> None:
        self._transport: Transport | None = None

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()

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
        from .transport import Transport, transport_error

        base = (request.api_base or DEFAULT_OPENAI_BASE).rstrip("/")
        try:
            parts = urlsplit(base)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            valid = valid and (parts.port is None or parts.port > 0)
        except ValueError:  # a bad port or IPv6 address
            valid = False
        if not valid:
            raise ModelError(
                f"{request.model}: api_base must be an http:// or https:// URL with a host"
            )
        where = f"{request.model} at {_public(base)}"
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if request.api_key and (parts.username is not None or parts.password is not None):
            raise ModelError(
                f"{where}: api_base has a user and password and an API key is set too; "
                "use one of them"
            )
        if request.api_key:
            if any(c in request.api_key for c in "\r\n\0"):
                raise ModelError(
                    f"{request.model}: the API key has a line break or NUL, which is not allowed "
                    "in an HTTP header (was it pasted with a newline?)"
                )
            headers["Authorization"] = f"Bearer {request.api_key}"
        if self._transport is None:
            self._transport = Transport()
        answer = _Answer(request, where)
        response: aiohttp.ClientResponse | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout
        first_byte = asyncio.timeout(min(request.first_byte_timeout, request.timeout))
        try:
            async with first_byte:
                response = await self._transport.post(
                    f"{base}/chat/completions", self._body(request), headers, request, where
                )
                data = await response.content.readany()
            # From here on aiohttp bounds each silence (armed now, re-armed by every read).
            connection = response.connection
            if connection is not None and connection.protocol is not None:
                connection.protocol.read_timeout = request.read_timeout
                connection.protocol.start_timeout()
            if answer.is_event_stream(response, data):
                read = response.content.readany
                events = answer.events
                time = loop.time
                while data:
                    for part in events(data):
                        yield part
                    if answer.done:
                        break
                    if time() > deadline:
                        raise TimeoutError
                    data = await read()
                for part in answer.end():
                    yield part
                if answer.done:
                    await answer.drain(response)
            else:
                async for part in answer.other(response, data):
                    yield part
        except TimeoutError as exc:
            import aiohttp

            if first_byte.expired() and request.first_byte_timeout < request.timeout:
                raise ModelError(
                    f"{where}: timed out: no answer within {request.first_byte_timeout:g} s "
                    "(first_byte_timeout)",
                    retryable=True,
                ) from None
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise transport_error(exc, where, request) from None
            raise ModelError(
                f"{where}: timed out: the request took longer than {request.timeout:g} s (timeout)",
                retryable=True,
            ) from None
        except ModelError:
            raise
        except OSError as exc:  # the socket's, or aiohttp's ClientOSError and its kin
            raise transport_error(exc, where, request) from exc
        except Exception as exc:
            import aiohttp

            if isinstance(exc, aiohttp.ClientError):  # aiohttp's others (not OSErrors)
                raise transport_error(exc, where, request) from exc
            raise
        finally:
            if response is not None:
                if answer.reusable:
                    response.release()
                else:
                    response.close()  # the server sees the connection close at once


class _Answer:
    """Reading one answer: its kind from the status and the content type, then its parts.

    An event stream is fed in by ``events()`` as it arrives (the hot path: a few dict and
    bytes operations per event); the other kinds are read by ``other()``.
    """

    def __init__(self, request: ModelRequest, where: str) -> None:
        self.request = request
        self.where = where
        self.accumulator = ChunkAccumulator(where, request.api_key)
        self.parser = SSEParser()
        self.done = False  # [DONE] seen
        self.heard = False  # a chunk seen
        self.reusable = False  # read to the end: the connection may serve another request
        self._kind = ""

    def is_event_stream(self, response: aiohttp.ClientResponse, first: bytes) -> bool:
        """Whether the answer is a successful SSE stream; else ``other()`` reads it."""
        content_type = response.content_type if "Content-Type" in response.headers else ""
        if response.status >= 300 or (response.status != 200 and not first):
            self._kind = "error"
        elif content_type == "text/event-stream":
            self._kind = "sse"
        elif content_type in _NDJSON:
            self._kind = "ndjson"
        elif content_type == "application/json" or content_type.endswith("+json"):
            self._kind = "json"
        elif content_type in _HTML:
            self._kind = "html"
        else:  # none, text/plain, octet-stream …: what does it look like?
            start = first.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
            self._kind = {b"{": "json?", b"[": "json?", b"<": "html"}.get(start, "sse")
        return self._kind == "sse"

    def events(self, data: bytes) -> Iterator[ModelPart]:
        """The parts the events that ``data`` completes give."""
        try:
            events = self.parser.feed(data)
        except SSEError as exc:
            raise ModelError(f"{self.where}: {exc}") from None
        return self._parts(events)

    def _parts(self, events: list[tuple[bytes, bytes]]) -> Iterator[ModelPart]:
        """One part at a time: a failure later in the same read comes after the parts before
        it (the text a model streamed before an in-stream error is kept)."""
        feed = self.accumulator.feed
        for event, payload in events:
            try:
                if payload[:1] == b"{" and event == b"message":  # a chunk, as nearly always
                    chunk = _loads_object(payload)
                else:
                    if payload.strip() == b"[DONE]":
                        self.done = True
                        return
                    if event == b"error" or not payload.strip():
                        self._event_error(payload, event)
                        continue
                    chunk = json.loads(payload)
            except ValueError as exc:
                raise ModelError(f"{self.where}: malformed stream data", retryable=True) from exc
            if type(chunk) is not dict:
                raise ModelError(f"{self.where}: malformed stream data", retryable=True)
            self.heard = True
            yield from feed(chunk)  # an in-stream error raises there, as on the litellm path

    def end(self) -> Iterator[ModelPart]:
        """At the end of the event stream (or at ``[DONE]``): the tool calls and usage."""
        if not self.done:
            self.reusable = True  # the body ended
            yield from self._parts(self.parser.end())  # an event with no blank line after it
        if not (self.done or self.accumulator.finished):
            if not self.heard:
                raise ModelError(
                    f"{self.where}: HTTP 200 (text/event-stream) ended without a single event",
                    retryable=True,
                )
            raise ModelError(
                f"{self.where}: the stream ended before the answer did", retryable=True
            )
        yield from self.accumulator.finish()

    async def other(
        self, response: aiohttp.ClientResponse, first: bytes
    ) -> AsyncIterator[ModelPart]:
        """An answer that is not an event stream: an error, NDJSON, or one JSON document."""
        content_type = response.content_type if "Content-Type" in response.headers else ""
        kind = self._kind
        if kind == "error" and response.status >= 400:
            raise self._http_error(response, await self._rest(response, first, _MAX_ERROR_BODY))
        if kind == "error":
            raise self._not_a_stream(response, content_type, first)
        if kind == "ndjson":
            splitter = LineSplitter()
            read = response.content.readany
            data = first
            try:
                while data:
                    for part in self._lines(splitter.lines(data), response):
                        yield part
                    data = await read()
                for part in self._lines(splitter.end(), response):
                    yield part
            except SSEError as exc:
                raise ModelError(f"{self.where}: {exc}") from None
            self.reusable = True
            for part in self._finish():
                yield part
            return
        body = await self._rest(response, first, MAX_SIZE)
        if kind == "html":
            raise self._not_a_stream(response, content_type, body)
        try:
            document = json.loads(body)
        except ValueError:
            if kind != "json?":
                raise self._not_a_stream(response, content_type, body) from None
            # no content type said JSON: perhaps lines of it
            for part in self._lines(LineSplitter().lines(body + b"\n"), response):
                yield part
            for part in self._finish():
                yield part
            return
        if not (isinstance(document, dict) and isinstance(document.get("choices"), list)):
            raise self._not_a_stream(response, content_type, body)
        if "error" in document:
            raise self._not_a_stream(response, content_type, body)
        for part in self.accumulator.feed(_as_chunk(document)):
            yield part
        for part in self.accumulator.finish():
            yield part

    def _lines(self, lines: list[bytes], response: aiohttp.ClientResponse) -> Iterator[ModelPart]:
        """NDJSON: each line a chunk (or a whole completion); ``data:`` prefixes tolerated."""
        for raw in lines:
            line = raw.strip().removeprefix(b"data:").strip()
            if not line or line == b"[DONE]":
                continue
            try:
                chunk = json.loads(line)
            except ValueError:
                raise self._not_a_stream(response, response.content_type, line) from None
            if isinstance(chunk, dict) and "error" in chunk:
                raise stream_error(chunk["error"], self.where, self.request.api_key)
            if not (isinstance(chunk, dict) and isinstance(chunk.get("choices"), list)):
                raise self._not_a_stream(response, response.content_type, line)
            if any(isinstance(c, dict) and "message" in c for c in chunk["choices"]):
                chunk = _as_chunk(chunk)
            yield from self.accumulator.feed(chunk)

    def _finish(self) -> Iterator[ModelPart]:
        if not self.accumulator.finished:
            raise ModelError(
                f"{self.where}: the stream ended before the answer did", retryable=True
            )
        yield from self.accumulator.finish()

    def _event_error(self, payload: bytes, event: bytes) -> None:
        """An ``event: error`` (its data JSON or text); an event with no data is skipped."""
        if event != b"error":
            return
        try:
            message = _detail(json.loads(payload))
        except ValueError:
            message = payload.decode("utf-8", "replace")
        raise ModelError(
            f"{self.where}: {_redact(message.strip() or 'error event', self.request.api_key)}",
            retryable=False,
        )

    def _http_error(self, response: aiohttp.ClientResponse, body: bytes) -> ModelError:
        status = response.status
        content_type = response.content_type if "Content-Type" in response.headers else ""
        problem = describe_http_error(status, body, self.request.api_key, content_type)
        if response.history:
            hop = response.history[-1]
            problem += f", after a redirect ({hop.status}) to {_public(str(response.url))}"
            if response.method == "GET":
                problem += " that turned the POST into a GET, as the OpenAI SDK does"
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return ModelError(
            f"{self.where}: {problem}",
            retryable=is_retryable_status(status),
            status_code=status,
            retry_after=retry_after,
        )

    def _not_a_stream(
        self, response: aiohttp.ClientResponse, content_type: str, body: bytes
    ) -> ModelError:
        """A clear, final error for an answer that is neither a stream nor a completion."""
        kind = content_type or "no content type"
        detail = describe_http_error(response.status, body, self.request.api_key, content_type)
        detail = detail.partition(": ")[2]
        return ModelError(
            f"{self.where}: HTTP {response.status} ({kind}) is not a chat completion stream"
            + (f": {detail}" if detail else ""),
            retryable=False,
            status_code=response.status,
        )

    async def _rest(self, response: aiohttp.ClientResponse, first: bytes, limit: int) -> bytes:
        """``first`` and the rest of the body, at most ``limit`` bytes."""
        parts = [first]
        size = len(first)
        while size < limit and (data := await response.content.readany()):
            parts.append(data)
            size += len(data)
        self.reusable = size < limit
        return b"".join(parts)[:limit]

    async def drain(self, response: aiohttp.ClientResponse) -> None:
        """Read what follows ``[DONE]`` (the body's end, at once from a sound server) so that the
        connection goes back to the pool; a server that lingers only loses its connection."""
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                while await response.content.readany():
                    pass
        except Exception:  # the answer is complete; the connection is simply not reused
            return
        self.reusable = True
