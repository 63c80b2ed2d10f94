"""The model client's connections: keep-alive, stale connections, the three timeouts, cancel,
event loops, proxies from the environment, TLS trust and the User-Agent — against real servers
on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import certifi
import pytest
from chat_shell import (
    DirectChatInterface,
    InterfaceConfig,
    ModelError,
    ModelRequest,
    TextDelta,
    __version__,
    load_settings,
)
from chat_shell._models.openai_backend import OpenAIBackend
from chat_shell._models.proxies import bypasses_proxy
from chat_shell._models.router import ModelRouter
from chat_shell._models.tls import system_context, trust_context
from chat_shell.testing import Reply, ScriptedModelServer
from model_support import Authority, pipe, read_request

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def request(api_base: str, **options: object) -> ModelRequest:
    return ModelRequest(
        model="scripted-model",
        messages=[{"role": "user", "content": "hi"}],
        api_base=api_base,
        api_key="sk-test",
        **options,  # type: ignore[arg-type]
    )


async def text(backend: OpenAIBackend, api_base: str, **options: object) -> str:
    parts = [part async for part in backend.stream(request(api_base, **options))]
    return "".join(part.text for part in parts if isinstance(part, TextDelta))


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A hand-written server on 127.0.0.1; yields its api_base. On exit its connections'
    handlers are given a moment to end, then cancelled (none outlives the test's loop)."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with listener:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/v1"
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(content: str) -> bytes:
    return chunk(b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % content.encode())


DONE = chunk(b"data: [DONE]\n\n") + chunk(b"")


# Keep-alive


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


async def test_more_concurrent_streams_than_aiohttps_default_pool_limit(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    """aiohttp queues requests beyond 100 connections by default; a server relaying many
    streams must not wait for a free one: 120 held streams are all under way at once."""
    server.add(*(Reply.tokens(3, hold_after=2) for _ in range(120)))
    tasks = [asyncio.create_task(text(backend, server.url)) for _ in range(120)]
    for _ in range(500):
        if len(server.requests) == 120:
            break
        await asyncio.sleep(0.02)
    assert len(server.requests) == 120
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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

    async with raw_server(answer_once) as api_base:
        for _ in range(3):
            assert await text(backend, api_base) == "fresh"
            await asyncio.sleep(0.2)  # the server has closed the idle connection by now
    assert connections == 3


# Timeouts: connect, first byte, silence within the answer, the whole request


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads the request, says nothing (until the client hangs up)."""
    await read_request(reader)
    await reader.read()
    writer.close()


async def test_an_upstream_that_accepts_and_never_answers_fails_after_the_first_byte_timeout(
    backend: OpenAIBackend,
) -> None:
    async with raw_server(never_answers) as api_base:
        started = time.perf_counter()
        with pytest.raises(ModelError, match=r"no answer within 0\.5 s") as caught:
            await text(backend, api_base, first_byte_timeout=0.5)
    assert caught.value.retryable
    assert time.perf_counter() - started < 5


async def test_the_first_byte_timeout_covers_a_head_sent_at_once_and_a_late_first_event(
    backend: OpenAIBackend,
) -> None:
    """Some servers send the head at once, then nothing until the model's first token."""

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        await writer.drain()
        await reader.read()  # until the client hangs up

    async with raw_server(late) as api_base:
        with pytest.raises(ModelError, match=r"no answer within 0\.5 s"):
            await text(backend, api_base, first_byte_timeout=0.5, read_timeout=30)


async def test_a_first_token_later_than_the_read_timeout_is_fine_within_the_first_byte_one(
    backend: OpenAIBackend,
) -> None:
    """The two timeouts are separate: a long prompt may take longer than any silence later."""

    async def slow_start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        await writer.drain()
        await asyncio.sleep(0.8)
        writer.write(event("late") + event(" but fine") + DONE)
        await writer.drain()
        writer.close()

    async with raw_server(slow_start) as api_base:
        answer = await text(backend, api_base, first_byte_timeout=5, read_timeout=0.3)
    assert answer == "late but fine"


async def test_a_stream_that_goes_silent_fails_after_the_read_timeout(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply(chunks=["a", "b", "c"], hold_after=2))
    with pytest.raises(ModelError, match=r"no data for 0\.3 s \(read_timeout\)") as caught:
        await text(backend, server.url, read_timeout=0.3, first_byte_timeout=10)
    assert caught.value.retryable


async def test_the_whole_request_is_bounded_by_timeout(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(100, delay=0.05))  # never silent, but 5 s long
    with pytest.raises(ModelError, match=r"took longer than 0\.5 s") as caught:
        await text(backend, server.url, timeout=0.5)
    assert caught.value.retryable


async def test_connecting_is_bounded_by_the_connect_timeout(
    backend: OpenAIBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy that accepts the connection and never answers the CONNECT: connecting (the
    tunnel included) fails after connect_timeout, long before the first-byte timeout."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async with raw_server(silent) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.removesuffix("/v1"))
        for name in ("NO_PROXY", "no_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(ModelError, match=r"connect_timeout 0\.3 s") as caught:
            await text(backend, "https://model.test/v1", connect_timeout=0.3)
    assert caught.value.retryable


def test_timeouts_come_from_the_model_then_the_settings_then_the_defaults(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.toml").write_text(
        'first_byte_timeout = 20\n[models."openai/tuned"]\napi_base = "http://127.0.0.1:1/v1"\n'
        'connect_timeout = 2.5\nread_timeout = 90\nca_bundle = "/etc/corp/ca.pem"\n'
        '[models."openai/plain"]\napi_base = "http://127.0.0.1:1/v1"\n'
    )
    router = ModelRouter(load_settings(tmp_path, environ={"CHAT_SHELL_READ_TIMEOUT": "45"}))
    tuned, plain = router.resolve("openai/tuned"), router.resolve("openai/plain")
    assert (tuned.connect_timeout, tuned.first_byte_timeout, tuned.read_timeout) == (2.5, 20, 90)
    assert tuned.ca_bundle == "/etc/corp/ca.pem"
    assert (plain.connect_timeout, plain.first_byte_timeout, plain.read_timeout) == (10, 20, 45)
    assert plain.ca_bundle is None


async def test_a_silent_upstream_fails_a_run_after_the_configured_first_byte_timeout(
    tmp_path: Path,
) -> None:
    """From config.toml to the request: seconds, not the run's 600 s."""
    async with raw_server(never_answers) as api_base:
        (tmp_path / "config.toml").write_text(
            f'[models."openai/silent"]\napi_base = "{api_base}"\nfirst_byte_timeout = 0.5\n'
        )
        config = InterfaceConfig(model="openai/silent", home=str(tmp_path), retries=1)
        started = time.perf_counter()
        async with DirectChatInterface(config) as chat:
            output = await chat.chat("hi")
    assert output.status == "failed"
    assert "no answer within 0.5 s" in (output.error or {})["message"]
    assert time.perf_counter() - started < 10


# Cancel and event loops


async def test_cancelling_a_stream_closes_its_connection_at_once(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(100, hold_after=3))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(request(server.url)):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for _ in range(100):  # the server sees the client hang up
        if server.hangups:
            break
        await asyncio.sleep(0.02)
    assert server.hangups == 1
    assert await text(backend, server.url) == "echo: hi"
    assert len(set(server.peers)) == 2  # the cancelled stream's connection was not reused


def test_one_backend_in_one_event_loop_after_another(server: ScriptedModelServer) -> None:
    """A backend used in two asyncio.run() calls: a session per loop, the first one closed
    when its loop ended (no unclosed session or socket is left to warn about)."""
    backend = OpenAIBackend()
    assert asyncio.run(text(backend, server.url)) == "echo: hi"
    gc.collect()
    assert asyncio.run(text(backend, server.url)) == "echo: hi"

    async def close() -> None:
        await backend.aclose()

    asyncio.run(close())
    gc.collect()
    assert len(set(server.peers)) == 2


# Proxies


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    return monkeypatch


async def test_requests_go_through_the_proxy_the_environment_names(
    backend: OpenAIBackend, server: ScriptedModelServer, no_proxy_settings: pytest.MonkeyPatch
) -> None:
    # The scripted server plays the proxy: it answers the forwarded request itself. The model's
    # host does not exist, so only a request sent through the proxy can succeed.
    no_proxy_settings.setenv("HTTP_PROXY", f"http://chat%20user:s3cret@127.0.0.1:{server.port}")
    assert await text(backend, "http://model.test/v1") == "echo: hi"
    headers = server.headers[0]
    assert headers["Host"] == "model.test"
    expected = base64.b64encode(b"chat user:s3cret").decode()
    assert headers["Proxy-Authorization"] == f"Basic {expected}"


async def test_a_proxy_reached_over_tls(
    backend: OpenAIBackend,
    tls_server: ScriptedModelServer,
    certificate: tuple[Path, Path],
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    """An https:// proxy (the scripted TLS server plays it), its certificate checked."""
    no_proxy_settings.setenv("HTTP_PROXY", f"https://127.0.0.1:{tls_server.port}")
    no_proxy_settings.delenv("SSL_CERT_DIR", raising=False)
    no_proxy_settings.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(ModelError, match="not trusted"):
        await text(backend, "http://model.test/v1")
    no_proxy_settings.setenv("SSL_CERT_FILE", str(certificate[0]))
    assert await text(backend, "http://model.test/v1") == "echo: hi"
    assert tls_server.headers[0]["Host"] == "model.test"


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [
        ("127.0.0.1", True),
        ("127.0.0.0/8", True),
        ("10.0.0.0/8, 127.0.0.1/32", True),
        ("127.0.0.1:{port}", True),
        ("127.0.0.1:1", False),  # another port: through the proxy
        ("10.0.0.0/8", False),
        ("*", True),
    ],
)
async def test_no_proxy_networks_and_ports(
    backend: OpenAIBackend,
    server: ScriptedModelServer,
    no_proxy_settings: pytest.MonkeyPatch,
    no_proxy: str,
    direct: bool,
) -> None:
    """The model server and a second scripted server as the proxy: which one was asked?"""
    with ScriptedModelServer(responder=lambda _: Reply.text("via the proxy")) as proxy:
        no_proxy_settings.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        no_proxy_settings.setenv("NO_PROXY", no_proxy.format(port=server.port))
        answer = await text(backend, server.url)
    assert answer == ("echo: hi" if direct else "via the proxy")


@pytest.mark.parametrize(
    ("host", "port", "entry", "bypass"),
    [
        ("api.example.com", 443, "example.com", True),
        ("example.com", 443, ".example.com", True),
        ("api.example.com", 443, "*.example.com", True),
        ("badexample.com", 443, "example.com", False),
        ("example.com", 8443, "example.com:8443", True),
        ("example.com", 443, "example.com:8443", False),
        ("EXAMPLE.com.", 443, "example.COM", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("::1", 80, "::1", True),
        ("::1", 8080, "[::1]:8080", True),
        ("fd00::5", 80, "fd00::/8", True),
        ("[fd00::5]", 80, "fd00::/8", True),
        ("localhost", 80, "localhost", True),
        ("127.0.0.1", 80, "localhost", False),  # names are not resolved, as in curl and httpx
        ("example.com", 443, "https://example.com", True),
        ("example.com", 80, "https://example.com", False),  # another scheme
        ("example.com", 443, "not a host/at all", False),
    ],
)
def test_no_proxy_entries(host: str, port: int, entry: str, bypass: bool) -> None:
    scheme = "http" if port in (80, 8080) else "https"
    assert bypasses_proxy(scheme, host, port, ["", " ", entry]) is bypass


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        ("socks5://user:s3cret@127.0.0.1:1080", "unsupported proxy socks5"),
        ("http://user:s3cret@", "not an http:// or https:// URL with a host"),
        ("http://user:s3cret@127.0.0.1:99999", "the proxy's URL is not valid"),
        ("http://user:s3cret@[::1", "the proxy's URL is not valid"),
    ],
)
async def test_an_unusable_proxy_is_a_model_error_that_keeps_its_secret(
    backend: OpenAIBackend, no_proxy_settings: pytest.MonkeyPatch, proxy: str, problem: str
) -> None:
    no_proxy_settings.setenv("HTTP_PROXY", proxy)
    with pytest.raises(ModelError, match=problem) as caught:
        await text(backend, "http://model.test/v1")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "api_base",
    [
        "localhost:11434/v1",
        "ftp://127.0.0.1/v1",
        "http://:80",
        "http://127.0.0.1:99999/v1",
        "http://127.0.0.1:port/v1",
        "http://[::1/v1",
        "http://127.0.0.1:0/v1",
    ],
)
async def test_an_api_base_that_is_not_an_http_url_is_refused(
    backend: OpenAIBackend, api_base: str
) -> None:
    with pytest.raises(ModelError, match="api_base must be an http"):
        await text(backend, api_base)


async def test_credentials_in_the_api_base_are_sent_as_basic_auth_and_never_shown(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    def keyless(api_base: str) -> ModelRequest:
        return ModelRequest(
            model="m", messages=[{"role": "user", "content": "hi"}], api_base=api_base
        )

    with_credentials = server.url.replace("http://", "http://user:s3cret@")
    assert [part async for part in backend.stream(keyless(with_credentials))]
    basic = base64.b64encode(b"user:s3cret").decode()
    assert server.headers[0]["Authorization"] == f"Basic {basic}"
    with pytest.raises(ModelError, match="and an API key is set too") as caught:
        await text(backend, with_credentials)  # request() sets an API key as well
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ModelError, match="cannot connect") as caught:
        async for _ in backend.stream(keyless("http://user:s3cret@127.0.0.1:9/v1")):
            pass
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:9" in str(caught.value)


async def test_the_user_agent_names_chat_shell_and_its_version(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    await text(backend, server.url)
    assert server.headers[0]["User-Agent"] == f"chat-shell/{__version__}"


# TLS


def tls_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(ssl_context=tls_server_context(*certificate)) as server:
        yield server


@pytest.fixture
def corp_server(authority: Authority) -> Iterator[ScriptedModelServer]:
    """A server whose certificate a test CA signed."""
    with ScriptedModelServer(ssl_context=tls_server_context(authority.cert, authority.key)) as s:
        yield s


@pytest.fixture
def no_trust_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return monkeypatch


async def test_https_with_a_certificate_trusted_by_ssl_cert_file(
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


async def test_https_with_a_ca_in_ssl_cert_dir(
    backend: OpenAIBackend,
    corp_server: ScriptedModelServer,
    authority: Authority,
    no_trust_settings: pytest.MonkeyPatch,
) -> None:
    no_trust_settings.setenv("SSL_CERT_DIR", str(authority.folder))
    assert await text(backend, corp_server.url) == "echo: hi"


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
async def test_a_models_ca_bundle_is_trusted(
    backend: OpenAIBackend,
    corp_server: ScriptedModelServer,
    authority: Authority,
    no_trust_settings: pytest.MonkeyPatch,
    as_folder: bool,
) -> None:
    bundle = str(authority.folder if as_folder else authority.ca)
    assert await text(backend, corp_server.url, ca_bundle=bundle) == "echo: hi"
    with pytest.raises(ModelError, match="not trusted"):  # the same server, without the bundle
        await text(backend, corp_server.url)


async def test_a_models_ca_bundle_replaces_the_environments(
    backend: OpenAIBackend,
    corp_server: ScriptedModelServer,
    authority: Authority,
    certificate: tuple[Path, Path],
    no_trust_settings: pytest.MonkeyPatch,
) -> None:
    no_trust_settings.setenv("SSL_CERT_FILE", str(authority.ca))
    with pytest.raises(ModelError, match="not trusted"):
        await text(backend, corp_server.url, ca_bundle=str(certificate[0]))


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "not PEM"])
async def test_an_unusable_ca_bundle_is_a_final_error_that_says_so(
    backend: OpenAIBackend, corp_server: ScriptedModelServer, tmp_path: Path, content: bytes | None
) -> None:
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    with pytest.raises(ModelError, match=f"ca_bundle {bundle}") as caught:
        await text(backend, corp_server.url, ca_bundle=str(bundle))
    assert caught.value.retryable is False
    assert corp_server.requests == []


async def test_an_untrusted_certificate_is_a_final_error(
    backend: OpenAIBackend, tls_server: ScriptedModelServer, no_trust_settings: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelError, match=r"certificate is not trusted \(self.signed") as caught:
        await text(backend, tls_server.url)
    assert caught.value.retryable is False
    assert tls_server.requests == []


async def test_a_certificate_for_another_host_is_a_final_error(
    backend: OpenAIBackend,
    tls_server: ScriptedModelServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trusted, but for 127.0.0.1 only
    with pytest.raises(ModelError, match=r"not trusted \(Hostname mismatch") as caught:
        await text(backend, f"https://localhost:{tls_server.port}/v1")
    assert caught.value.retryable is False


async def test_tls_to_a_plain_http_server_is_a_final_error(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    with pytest.raises(ModelError, match="TLS handshake failed") as caught:
        await text(backend, server.url.replace("http:", "https:"))
    assert caught.value.retryable is False


async def test_a_run_does_not_retry_a_certificate_failure(
    corp_server: ScriptedModelServer, no_trust_settings: pytest.MonkeyPatch
) -> None:
    """Counted by a TCP relay in front of the server: one connection, not three."""
    connections = 0

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", corp_server.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async with raw_server(relay) as relayed:
        config = InterfaceConfig(
            model="openai/corp", api_base=relayed.replace("http:", "https:"), retries=2
        )
        async with DirectChatInterface(config) as chat:
            output = await chat.chat("hi")
    assert output.status == "failed"
    assert "not trusted" in (output.error or {})["message"]
    assert connections == 1


def test_the_platform_store_is_trusted_by_default(no_trust_settings: pytest.MonkeyPatch) -> None:
    """On Linux: OpenSSL's default CA file and folder, where a company CA is installed with
    update-ca-certificates; certifi's bundle is not what is trusted."""
    context = trust_context()
    system = ssl.create_default_context()  # OpenSSL's defaults (SSL_CERT_* are unset here)
    assert context.get_ca_certs() == system.get_ca_certs()
    assert (
        context.get_ca_certs() != ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    )


def test_certifi_only_where_the_system_has_no_ca_store(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "none")
    paths = ssl.DefaultVerifyPaths(
        nowhere, nowhere, "SSL_CERT_FILE", nowhere, "SSL_CERT_DIR", nowhere
    )
    certifi_context = ssl.create_default_context(cafile=certifi.where())
    assert system_context(paths).get_ca_certs() == certifi_context.get_ca_certs()


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

    big = "x" * 8_000_000
    async with raw_server(late_reader) as api_base:
        model_request = ModelRequest(
            model="m", messages=[{"role": "user", "content": big}], api_base=api_base, timeout=30
        )
        parts = [part async for part in backend.stream(model_request)]
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
