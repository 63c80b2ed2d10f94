"""The model client's HTTP against hand-written answers from a raw server on 127.0.0.1: every
body framing, answers split into tiny pieces, informational answers, answers that break the
protocol (each a ModelError, none a hang), a CONNECT tunnel, header safety and connections a
server closed while idle."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from chat_shell import ModelError, ModelRequest, TextDelta
from chat_shell._models.openai_backend import OpenAIBackend
from chat_shell.testing import ScriptedModelServer
from model_support import pipe, read_request

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def sse(*texts: str) -> bytes:
    events = [
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}).encode()
        for t in texts
    ]
    return b"\n\n".join([*events, b"data: [DONE]"]) + b"\n\n"


def chunked(body: bytes, size: int = 7, extension: bytes = b"") -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in pieces)
    return framed + b"0\r\n"


class RawServer:
    """Answers each request with ``answer`` (bytes, written in pieces of ``piece`` bytes)."""

    def __init__(self, answer: bytes, piece: int | None = None, close: bool = False) -> None:
        self.answer, self.piece, self.close = answer, piece, close
        self.connections = 0
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                self.heads.append((await read_request(reader))[0])
                step = self.piece or len(self.answer)
                for start in range(0, len(self.answer), step):
                    writer.write(self.answer[start : start + step])
                    await writer.drain()
                    if self.piece:
                        await asyncio.sleep(0.001)
                if self.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[RawServer], Awaitable[str]]]:
    listeners: list[asyncio.Server] = []

    async def start(raw: RawServer) -> str:
        listener = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        listeners.append(listener)
        return f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/v1"

    yield start
    for listener in listeners:
        listener.close()
        await listener.wait_closed()


async def answer(backend: OpenAIBackend, api_base: str, api_key: str = "sk-test") -> str:
    request = ModelRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        api_base=api_base,
        api_key=api_key,
        timeout=3,
    )
    parts = [part async for part in backend.stream(request)]
    return "".join(p.text for p in parts if isinstance(p, TextDelta))


KEY = "sk-test-secret-key-0123456789"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
BODY = sse("Hello", ", ", "world")


@pytest.mark.parametrize(
    ("name", "raw", "reused"),
    [
        ("content-length", OK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY, True),
        ("chunked", OK + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY) + b"\r\n", True),
        (
            "chunked with extensions and trailers",
            OK
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + chunked(BODY, 5, b";name=value")
            + b"X-Trailer: 1\r\n\r\n",
            True,
        ),
        (
            "Connection: close",
            OK + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY,
            False,
        ),
        ("HTTP/1.0", b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY, False),
        (
            "informational answers first",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
            + OK
            + b"Content-Length: %d\r\n\r\n" % len(BODY)
            + BODY,
            True,
        ),
    ],
)
@pytest.mark.parametrize("piece", [None, 1])
async def test_body_framings(
    backend: OpenAIBackend,
    serve: Callable[[RawServer], Awaitable[str]],
    name: str,
    raw: bytes,
    reused: bool,
    piece: int | None,
) -> None:
    server = RawServer(raw, piece=piece, close=not reused)
    api_base = await serve(server)
    for _ in range(2):
        assert await answer(backend, api_base) == "Hello, world", name
    assert server.connections == (1 if reused else 2), name


async def test_a_body_that_ends_with_the_connection(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    server = RawServer(OK + b"\r\n" + BODY, close=True)  # no length, not chunked
    assert await answer(backend, await serve(server)) == "Hello, world"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        ("bad status", b"HTTP/1.1 2OO OK\r\n\r\n"),
        (
            "bare LF chunk lines",
            OK + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY).replace(b"\r\n", b"\n"),
        ),
        ("bad content-length", OK + b"Content-Length: 12abc\r\n\r\n"),
        ("bad chunk size", OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("0x chunk size", OK + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"),
        (
            "chunk longer than said",
            OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        ),
        ("overlong head", OK + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
        ("overlong chunk line", OK + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 2000 + b"\r\n"),
    ],
)
async def test_answers_that_break_the_protocol_are_model_errors(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]], name: str, raw: bytes
) -> None:
    server = RawServer(raw, close=True)
    with pytest.raises(ModelError, match="connection failed") as caught:
        await asyncio.wait_for(answer(backend, await serve(server), api_key=KEY), 5)
    assert caught.value.retryable, name
    assert KEY not in str(caught.value)


async def test_switching_protocols_is_a_final_error(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    server = RawServer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", close=True)
    with pytest.raises(ModelError, match=r"HTTP 101 \(no content type\) is not a chat") as caught:
        await asyncio.wait_for(answer(backend, await serve(server)), 5)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    "cut",
    [b"Content-Length: 900\r\n\r\n" + BODY[:60], b"Transfer-Encoding: chunked\r\n\r\n40\r\nhello"],
)
async def test_a_body_cut_short_is_a_model_error(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]], cut: bytes
) -> None:
    server = RawServer(OK + cut, close=True)
    with pytest.raises(ModelError, match=r"connection failed|ended before"):
        await asyncio.wait_for(answer(backend, await serve(server)), 5)


async def test_an_api_key_cannot_inject_headers(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    server = RawServer(OK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    api_base = await serve(server)
    with pytest.raises(ModelError, match="not allowed") as caught:
        await answer(backend, api_base, api_key="sk-test\r\nX-Evil: 1")
    assert server.heads == []
    assert "X-Evil" not in str(caught.value)


async def test_the_request(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    server = RawServer(OK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    await answer(backend, await serve(server))
    lines = server.heads[0].decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["Host"].startswith("127.0.0.1:")
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "text/event-stream"
    assert headers["Accept-Encoding"] == "gzip, deflate"  # what the client can decode
    assert headers["User-Agent"].startswith("chat-shell/")
    assert int(headers["Content-Length"]) > 0


class TunnelProxy:
    """An HTTP proxy that only does CONNECT (or refuses it with ``refuse``)."""

    def __init__(self, refuse: int | None = None) -> None:
        self.refuse = refuse
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        if self.refuse:
            writer.write(b"HTTP/1.1 %d No\r\nContent-Length: 0\r\n\r\n" % self.refuse)
            writer.close()
            return
        host, port = head.split(b" ")[1].decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.mark.parametrize("refuse", [None, 407])
async def test_https_through_a_connect_tunnel(
    backend: OpenAIBackend,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    refuse: int | None,
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    proxy = TunnelProxy(refuse)
    listener = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:pw@127.0.0.1:{port}")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ScriptedModelServer(ssl_context=context) as upstream:
        upstream_port = upstream.port
        async with listener:
            if refuse:
                with pytest.raises(ModelError, match=r"proxy refused the tunnel \(HTTP 407\)") as e:
                    await answer(backend, upstream.url)
                assert e.value.retryable is False
            else:
                assert await answer(backend, upstream.url) == "echo: hi"
    connect = proxy.requests[0].decode()
    assert connect.startswith(f"CONNECT 127.0.0.1:{upstream_port} HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic dXNlcjpwdw==" in connect


class ClosesSecondRequest(RawServer):
    """Answers the first request of each connection; on the second, hangs up without a word
    (a server whose idle timeout fired just as the client reused the connection)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.heads.append((await read_request(reader))[0])
            writer.write(self.answer)
            await writer.drain()
            self.heads.append((await read_request(reader))[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_kept_alive_connection_closed_unanswered_is_retried_once_on_a_new_one(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    server = ClosesSecondRequest(OK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    api_base = await serve(server)
    for _ in range(3):
        assert await answer(backend, api_base) == "Hello, world"
    assert server.connections == 3  # the second and third requests each needed a new one
    assert len(server.heads) == 5  # 3 answered + 2 unanswered on reused connections


async def test_a_new_connection_closed_unanswered_is_not_retried(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    server = RawServer(b"", close=True)  # reads the request, says nothing, hangs up
    with pytest.raises(ModelError, match="connection failed"):
        await answer(backend, await serve(server))
    assert server.connections == 1


async def test_a_reused_connection_that_broke_mid_answer_is_not_retried(
    backend: OpenAIBackend, serve: Callable[[RawServer], Awaitable[str]]
) -> None:
    full = OK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY

    class HalfSecondAnswer(RawServer):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                self.heads.append((await read_request(reader))[0])
                writer.write(full)
                self.heads.append((await read_request(reader))[0])
                writer.write(full[:20])  # part of the status line, then gone
                await writer.drain()
            finally:
                writer.close()

    server = HalfSecondAnswer(b"")
    api_base = await serve(server)
    assert await answer(backend, api_base) == "Hello, world"
    with pytest.raises(ModelError, match="connection failed"):
        await answer(backend, api_base)
    assert server.connections == 1
