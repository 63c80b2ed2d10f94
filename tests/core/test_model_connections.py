"""The lean model client's connections: keep-alive, stale connections, timeouts, cancel,
proxies from the environment and TLS — against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chat_shell import ModelError, ModelRequest, TextDelta
from chat_shell._openai_backend import OpenAIBackend
from chat_shell.testing import Reply, ScriptedModelServer
from model_support import read_request


def request(api_base: str, timeout: float = 10) -> ModelRequest:
    return ModelRequest(
        model="scripted-model",
        messages=[{"role": "user", "content": "hi"}],
        api_base=api_base,
        api_key="sk-test",
        timeout=timeout,
    )


async def text(backend: OpenAIBackend, api_base: str, timeout: float = 10) -> str:
    parts = [part async for part in backend.stream(request(api_base, timeout))]
    return "".join(part.text for part in parts if isinstance(part, TextDelta))


@pytest.fixture
def server() -> AsyncIterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


async def test_one_connection_serves_requests_one_after_another(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    for _ in range(3):
        assert await text(backend, server.url) == "echo: hi"
    assert len(set(server.peers)) == 1


async def test_concurrent_requests_each_get_a_connection_and_keep_it(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(*(Reply.tokens(5, delay=0.01) for _ in range(20)))
    await asyncio.gather(*(text(backend, server.url) for _ in range(20)))
    assert len(set(server.peers)) == 20
    await asyncio.gather(*(text(backend, server.url) for _ in range(20)))
    assert len(set(server.peers)) == 20  # the second round reused all of them


async def test_a_connection_the_server_closed_is_not_reused(backend: OpenAIBackend) -> None:
    """A server that hangs up on an idle kept-alive connection (without saying so first)."""
    connections = 0
    body = b'data: {"choices":[{"index":0,"delta":{"content":"fresh"}}]}\n\ndata: [DONE]\n\n'

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # keep-alive was implied; the server closes anyway

    listener = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        for _ in range(3):
            assert await text(backend, f"http://127.0.0.1:{port}/v1") == "fresh"
            await asyncio.sleep(0.2)  # the server has closed the idle connection by now
    assert connections == 3


async def test_waiting_longer_than_the_timeout_is_a_retryable_error(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply(chunks=["late"], first_delay=1.5))
    with pytest.raises(ModelError, match="timed out") as caught:
        await text(backend, server.url, timeout=0.3)
    assert caught.value.retryable


async def test_a_stream_that_stalls_times_out(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply(chunks=["a", "b", "c"], delay=1.5))
    with pytest.raises(ModelError, match="timed out"):
        await text(backend, server.url, timeout=0.3)


async def test_cancelling_a_stream_drops_its_connection(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(100, delay=0.05))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(request(server.url)):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await text(backend, server.url) == "echo: hi"
    assert len(set(server.peers)) == 2  # the cancelled stream's connection was not reused


@pytest.mark.parametrize("api_base", ["localhost:11434/v1", "ftp://127.0.0.1/v1", "http://:80"])
async def test_an_api_base_that_is_not_an_http_url_is_refused(
    backend: OpenAIBackend, api_base: str
) -> None:
    with pytest.raises(ModelError, match="api_base must be an http"):
        await text(backend, api_base)


async def test_requests_go_through_the_proxy_the_environment_names(
    backend: OpenAIBackend, server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scripted server plays the proxy: it answers the forwarded request itself. The model's
    # host does not exist, so only a request sent through the proxy can succeed.
    monkeypatch.setenv("HTTP_PROXY", f"http://chat%20user:s3cret@127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert await text(backend, "http://model.test/v1") == "echo: hi"
    headers = server.headers[0]
    assert headers["Host"] == "model.test"
    expected = base64.b64encode(b"chat user:s3cret").decode()
    assert headers["Proxy-Authorization"] == f"Basic {expected}"


async def test_no_proxy_hosts_are_reached_directly(
    backend: OpenAIBackend, server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert await text(backend, server.url) == "echo: hi"


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        ("socks5://user:s3cret@127.0.0.1:1080", "unsupported proxy socks5"),
        ("http://user:s3cret@", "not an http:// or https:// URL with a host"),
    ],
)
async def test_an_unusable_proxy_is_a_model_error_that_keeps_its_secret(
    backend: OpenAIBackend, monkeypatch: pytest.MonkeyPatch, proxy: str, problem: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ModelError, match=problem) as caught:
        await text(backend, "http://model.test/v1")
    assert "s3cret" not in str(caught.value)


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[ScriptedModelServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with ScriptedModelServer(ssl_context=context) as server:
        yield server


async def test_https_with_a_trusted_certificate(
    backend: OpenAIBackend,
    tls_server: ScriptedModelServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    assert tls_server.url.startswith("https://")
    for _ in range(2):
        assert await text(backend, tls_server.url) == "echo: hi"
    assert len(set(tls_server.peers)) == 1


async def test_https_with_an_untrusted_certificate_is_refused(
    backend: OpenAIBackend, tls_server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(ModelError, match="cannot connect"):
        await text(backend, tls_server.url)
    assert tls_server.requests == []


async def test_a_large_request_body_reaches_a_server_that_reads_late(
    backend: OpenAIBackend,
) -> None:
    """8 MB while the server reads nothing for 0.3 s: the write waits for the socket to drain."""
    received: list[int] = []

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        received.append(len((await read_request(reader))[1]))
        body = b'data: {"choices":[{"index":0,"delta":{"content":"got it"}}]}\n\ndata: [DONE]\n\n'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(late_reader, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    big = "x" * 8_000_000
    request = ModelRequest(
        model="m",
        messages=[{"role": "user", "content": big}],
        api_base=f"http://127.0.0.1:{port}/v1",
        timeout=30,
    )
    async with listener:
        parts = [part async for part in backend.stream(request)]
    assert [p.text for p in parts if isinstance(p, TextDelta)] == ["got it"]
    assert received[0] > len(big)


def test_under_uvloop_plain_and_tls(
    server: ScriptedModelServer,
    tls_server: ScriptedModelServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`chat-shell serve` runs on uvloop when it is installed: the same client there."""
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))

    async def both() -> list[str]:
        backend = OpenAIBackend()
        try:
            return [await text(backend, url) for url in (server.url, tls_server.url) * 2]
        finally:
            await backend.aclose()

    assert uvloop.run(both()) == ["echo: hi"] * 4
    assert len(set(server.peers)) == 1
    assert len(set(tls_server.peers)) == 1
