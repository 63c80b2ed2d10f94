"""What the openai/ client makes of answers real servers send besides a plain SSE stream:
NDJSON, unlabelled bodies, error documents, Retry-After, redirects, compression, huge chunks."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncGenerator, Iterator

import pytest
from chat_shell import ModelError, ModelRequest, TextDelta, ToolCallPart, UsagePart
from chat_shell._models.backend import ModelPart
from chat_shell._models.openai_backend import OpenAIBackend
from chat_shell.testing import Reply, ScriptedModelServer, ScriptedToolCall, reply_chunks
from model_support import sse_stream

KEY = "sk-test-secret-key-0123456789"


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


def request(api_base: str, **options: object) -> ModelRequest:
    return ModelRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        api_base=api_base,
        api_key=KEY,
        **options,  # type: ignore[arg-type]
    )


async def collect(backend: OpenAIBackend, api_base: str, **options: object) -> list[ModelPart]:
    return [part async for part in backend.stream(request(api_base, **options))]


def texts(parts: list[ModelPart]) -> str:
    return "".join(p.text for p in parts if isinstance(p, TextDelta))


TOOL_REPLY = Reply(
    chunks=["Sure."], tool_calls=[ScriptedToolCall("calculator", {"expression": "1+1"})]
)


def ndjson(reply: Reply) -> bytes:
    return b"".join(json.dumps(chunk).encode() + b"\n" for chunk in reply_chunks(reply))


async def test_ndjson_lines_of_chunks(backend: OpenAIBackend, server: ScriptedModelServer) -> None:
    server.add(Reply.raw(ndjson(TOOL_REPLY), "application/x-ndjson", piece_size=5))
    parts = await collect(backend, server.url)
    assert texts(parts) == "Sure."
    assert [p.name for p in parts if isinstance(p, ToolCallPart)] == ["calculator"]
    assert isinstance(parts[-1], UsagePart)


@pytest.mark.parametrize("content_type", ["", "text/plain; charset=utf-8"])
async def test_a_stream_without_its_content_type_is_read_for_what_it_is(
    backend: OpenAIBackend, server: ScriptedModelServer, content_type: str
) -> None:
    server.add(
        Reply.raw(sse_stream(Reply.tokens(3)), content_type),
        Reply.raw(
            json.dumps({"choices": [{"message": {"content": "whole"}}]}).encode(), content_type
        ),
        Reply.raw(ndjson(Reply.tokens(2)), content_type),
    )
    assert texts(await collect(backend, server.url)) == "t0 t1 t2 "
    assert texts(await collect(backend, server.url)) == "whole"
    assert texts(await collect(backend, server.url)) == "t0 t1 "


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        ("application/json", b'{"detail": "Not Found"}', "Not Found"),
        ("application/json", b"[1, 2]", "is not a chat completion stream"),
        ("application/x-ndjson", b'{"message": {"content": "hi"}, "done": false}\n', "done"),
        ("application/x-ndjson", b"not json\n", "not json"),
        ("application/octet-stream", b"<?xml version='1.0'?><error>quota</error>", "quota"),
    ],
)
async def test_a_200_that_is_no_completion_names_its_status_and_content_type(
    backend: OpenAIBackend,
    server: ScriptedModelServer,
    content_type: str,
    body: bytes,
    says: str,
) -> None:
    server.add(Reply.raw(body, content_type))
    with pytest.raises(ModelError, match=says) as caught:
        await collect(backend, server.url)
    assert f"HTTP 200 ({content_type})" in str(caught.value)
    assert caught.value.retryable is False


async def test_an_error_event_in_the_stream(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    body = sse_stream(Reply.tokens(1)).replace(
        b"data: [DONE]",
        b'event: error\ndata: {"message": "model is loading", "key": "%s"}' % KEY.encode(),
    )
    server.add(Reply.raw(body))
    with pytest.raises(ModelError, match="model is loading") as caught:
        await collect(backend, server.url)
    assert KEY not in str(caught.value)


async def test_an_error_answer_never_shows_the_key(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(
        ModelError, match=r"HTTP 401 \(application/json\): Incorrect API key"
    ) as caught:
        await collect(backend, server.url)
    assert KEY not in str(caught.value)
    assert caught.value.status_code == 401


# Retry-After (429 and 503)


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "7", 7.0),
        (503, "1.5", 1.5),
        (429, "3600", 3600.0),  # as asked: the agent decides (a wait over 60 s is no retry)
        (429, "-5", 0.0),
        (429, "soon", None),
        (429, None, None),
        (500, "7", None),  # only where the status means "come back later"
    ],
)
async def test_retry_after_in_seconds(
    backend: OpenAIBackend,
    server: ScriptedModelServer,
    status: int,
    header: str | None,
    expected: float | None,
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    server.add(Reply.error(status, "slow down", headers=headers))
    with pytest.raises(ModelError) as caught:
        await collect(backend, server.url)
    assert caught.value.retry_after == expected
    assert caught.value.status_code == status
    assert caught.value.retryable


async def test_retry_after_as_an_http_date(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.error(503, "maintenance", headers={"Retry-After": http_date(30)}))
    with pytest.raises(ModelError) as caught:
        await collect(backend, server.url)
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


# Redirects


async def test_a_redirect_to_another_origin_drops_the_key(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    with ScriptedModelServer() as elsewhere:
        server.add(Reply.redirect(f"{elsewhere.url}/chat/completions", 308))
        assert texts(await collect(backend, server.url)) == "echo: hi"
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in elsewhere.headers[0]
    assert elsewhere.requests[0] == server.requests[0]


async def test_a_redirect_on_the_same_origin_keeps_the_key(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.redirect("/v2/chat/completions", 307))
    await collect(backend, server.url)
    assert server.headers[1]["Authorization"] == f"Bearer {KEY}"


async def test_a_redirect_loop_ends_after_twenty(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(*(Reply.redirect("/v1/chat/completions", 307) for _ in range(25)))
    with pytest.raises(ModelError, match="more than 20 redirects") as caught:
        await collect(backend, server.url)
    assert caught.value.retryable is False
    assert len(server.requests) == 20


async def test_a_redirect_that_made_a_get_says_so(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.redirect("/moved/v1/chat/completions", 301))
    with pytest.raises(ModelError, match=r"HTTP 405 .* after a redirect \(301\) to ") as caught:
        await collect(backend, server.url)
    moved = f"http://127.0.0.1:{server.port}/moved/v1/chat/completions"
    assert f"{moved} that turned the POST into a GET" in str(caught.value)


async def test_a_redirect_to_a_non_http_url_is_refused(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.redirect("ftp://127.0.0.1/v1/chat/completions", 307))
    with pytest.raises(ModelError, match="redirected to a URL that is not http") as caught:
        await collect(backend, server.url)
    assert caught.value.retryable is False


# Compression


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_stream_still_streams(
    backend: OpenAIBackend, server: ScriptedModelServer, encoding: str
) -> None:
    """The server sends two events and then nothing: they must arrive all the same (a client
    that decoded the body only at its end would wait for ever)."""
    server.add(Reply(chunks=["first", "second", "third"], hold_after=3, content_encoding=encoding))
    stream = backend.stream(request(server.url, read_timeout=30))
    assert isinstance(stream, AsyncGenerator)  # closed early below
    seen: list[str] = []
    async with asyncio.timeout(5):
        async for part in stream:
            if isinstance(part, TextDelta):
                seen.append(part.text)
            if seen == ["first", "second"]:
                break
    await stream.aclose()
    assert seen == ["first", "second"]


async def test_a_compressed_error_answer(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply(status=400, error_message="bad request, compressed", content_encoding="gzip"))
    with pytest.raises(ModelError, match="bad request, compressed"):
        await collect(backend, server.url)


async def test_an_encoding_the_client_cannot_decode_is_a_clear_error(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(
        Reply.raw(b"\x0b\x02\x80hello\x03", headers={"Content-Encoding": "br"}),
        Reply.raw(b"not gzip at all", headers={"Content-Encoding": "gzip"}),
    )
    for encoding in ("brotli", "gzip"):
        with pytest.raises(ModelError, match=f"cannot decode the answer .*{encoding}") as caught:
            await collect(backend, server.url)
        assert caught.value.retryable is False


# Size


async def test_a_chunk_of_8_mb_in_one_line(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    big = "x" * 8_000_000
    server.add(Reply(chunks=[big, "!"]))
    parts = await collect(backend, server.url)
    assert texts(parts) == big + "!"


async def test_a_line_over_16_mib_is_a_final_error(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.raw(b"data: " + b"x" * (17 << 20)))
    with pytest.raises(ModelError, match="longer than 16777216 bytes") as caught:
        await collect(backend, server.url)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    "data",
    [b'{"choices": []} and more', b"{", b'{"a": 1}}', b"\xff{}", b'{"a": NaN'],
    ids=["extra data", "cut short", "extra brace", "not UTF-8", "unfinished"],
)
async def test_malformed_event_data_is_a_retryable_error(
    backend: OpenAIBackend, server: ScriptedModelServer, data: bytes
) -> None:
    server.add(Reply.raw(b"data: " + data + b"\n\ndata: [DONE]\n\n"))
    with pytest.raises(ModelError, match="malformed stream data") as caught:
        await collect(backend, server.url)
    assert caught.value.retryable


async def test_event_data_with_spaces_around_the_json(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    chunk = b'{"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}'
    server.add(Reply.raw(b"data:   " + chunk + b"  \n\ndata: [DONE]\n\n"))
    assert texts(await collect(backend, server.url)) == "ok"


async def test_an_empty_event_stream_says_so(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    server.add(Reply.raw(b""), Reply.raw(b": only a comment\n\n"))
    for _ in range(2):
        with pytest.raises(ModelError, match="ended without a single event") as caught:
            await collect(backend, server.url)
        assert caught.value.retryable


async def test_text_before_an_error_in_the_same_read_is_kept(
    backend: OpenAIBackend, server: ScriptedModelServer
) -> None:
    """Three tokens and an in-stream error arrive in one network read: the tokens come out
    before the error, as they would had each come in its own read."""
    body = sse_stream(Reply.tokens(3)).replace(b"data: [DONE]\n\n", b"")
    body += b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    server.add(Reply.raw(body, "text/event-stream"))
    parts: list[ModelPart] = []

    async def read() -> None:
        async for part in backend.stream(request(server.url)):
            parts.append(part)

    with pytest.raises(ModelError, match="overloaded"):
        await read()
    assert texts(parts) == "t0 t1 t2 "
