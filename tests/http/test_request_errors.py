"""Requests the server cannot take get the one documented error shape (JSON): a malformed
Content-Length, a method the path does not have (405 with every allowed method), a compressed
or undecodable body, an empty session id, a Last-Event-ID that is not a seq as written."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import httpx
from chat_shell.testing import ScriptedModelServer
from http_support import ThreadServer, assert_error_shape, make_settings, user


async def raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        data = b""
        async with asyncio.timeout(30):
            while chunk := await reader.read(65536):
                data += chunk
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


async def test_a_malformed_content_length_gets_the_json_400(server: ThreadServer) -> None:
    body = json.dumps({"messages": user("x")}).encode()
    lengths: list[list[bytes]] = [
        [b"1x"],
        [b"-1"],
        [b"+%d" % len(body)],
        [b"%d_0" % len(body)],
        [b"0x10"],
        [b"1.0"],
        [b""],
        [b"%d, %d" % (len(body), len(body))],
        ["１".encode()],  # a fullwidth digit
        [b"%d" % len(body), b"%d" % (len(body) + 1)],
        [b"99999999999999999999999"],
    ]
    before = (server.state.runs.active_count, server.state.runs.started_count)
    for values in lengths:
        request = b"POST /v1/response HTTP/1.1\r\nHost: localhost\r\n"
        request += b"Content-Type: application/json\r\n"
        request += b"".join(b"Content-Length: " + value + b"\r\n" for value in values)
        status, headers, answer = await raw_answer(server.port, request + b"\r\n" + body)
        assert status == 400, values
        assert headers["content-type"] == "application/json"
        assert answer["error"]["code"] in ("bad_http_request", "bad_content_length"), values
        assert set(answer["error"]) == {"code", "message", "retryable"}
    assert (server.state.runs.active_count, server.state.runs.started_count) == before


async def test_405_lists_every_method_of_the_path(server: ThreadServer) -> None:
    paths = server.app.openapi()["paths"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for template, operations in paths.items():
            path = template.replace("{session_id}", "s-405").replace("{run_id}", "run_x")
            allowed = {method.upper() for method in operations}
            for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
                response = await client.request(method, path)
                assert_error_shape(response, 405, "method_not_allowed")
                assert set(response.headers["allow"].split(", ")) == allowed, (method, path)


async def test_a_compressed_body_gets_415(server: ThreadServer) -> None:
    body = json.dumps({"messages": user("zipped"), "stream": False}).encode()
    compressed = {
        "gzip": gzip.compress(body),
        "GZIP": gzip.compress(body),
        "x-gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "br": b"\x8b\x03\x80not-really-brotli\x03",
        "gzip, gzip": gzip.compress(gzip.compress(body)),
        "identity, gzip": gzip.compress(body),
        "compress": body,
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        before = (await client.get("/v1/sessions")).json()
        for encoding, content in compressed.items():
            headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
            response = await client.post("/v1/response", content=content, headers=headers)
            assert_error_shape(response, 415, "unsupported_content_encoding")
            assert response.headers["accept-encoding"] == "identity"
        assert (await client.get("/v1/sessions")).json() == before
        headers = {"Content-Type": "application/json", "Content-Encoding": "identity"}
        plain = await client.post("/v1/response", content=body, headers=headers)
        assert plain.json()["content"] == "echo: zipped"
        await client.delete(f"/v1/sessions/{plain.json()['session_id']}")


async def test_a_body_that_is_not_utf8_json_gets_invalid_json(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for content in (b"\xff\xfe\x00{", b'{"messages": "\xe9"}', b"\x80"):
            response = await client.post(
                "/v1/response", content=content, headers={"Content-Type": "application/json"}
            )
            assert_error_shape(response, 400, "invalid_json")


async def test_an_empty_session_id_is_a_bad_request(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        before = (await client.get("/v1/sessions")).json()
        runs = (server.state.runs.active_count, server.state.runs.started_count)
        for session_id in ("", " ", "a b", ".", "-x"):
            for stream in (True, False):
                response = await client.post(
                    "/v1/response",
                    json={"messages": user("hi"), "session_id": session_id, "stream": stream},
                )
                error = assert_error_shape(response, 400, "bad_request")
                assert "session id" in error["message"]
        assert (await client.get("/v1/sessions")).json() == before
        assert (server.state.runs.active_count, server.state.runs.started_count) == runs


async def test_last_event_id_must_be_a_seq_as_the_stream_wrote_it(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        run = (
            await client.post("/v1/response", json={"messages": user("a b c"), "stream": False})
        ).json()
        url = f"/v1/response/{run['subtask_id']}"
        sse = {"Accept": "text/event-stream"}
        last = run["last_seq"]
        assert last >= 2
        not_seqs = ["0_0", "1_0", "+0", "+1", "-0", "-2", "00", "01", "0 0", "0x0", "1e0", "0.0"]
        for value in [*not_seqs, ""]:
            response = await client.get(url, headers={**sse, "Last-Event-ID": value})
            assert_error_shape(response, 400, "bad_last_event_id")
        for value in [*not_seqs, " 0", "0 ", "١", "０", "²", "0\u200b"]:
            response = await client.get(url, params={"stream": "true", "after": value})
            assert_error_shape(response, 400, "bad_last_event_id")
        arabic_one = [*sse.items(), ("Last-Event-ID", "١".encode())]
        unicode_digit = await client.get(url, headers=arabic_one)
        assert_error_shape(unicode_digit, 400, "bad_last_event_id")
        # A seq as written is taken, from the header and from ?after=.
        for value, expected in (("0", last), ("1", last - 1), (str(last), 0)):
            resumed = await client.get(url, headers={**sse, "Last-Event-ID": value})
            assert resumed.text.count("\ndata: ") + resumed.text.startswith("data: ") == expected
            after = await client.get(url, params={"stream": "true", "after": value})
            assert after.text == resumed.text
        whole = await client.get(url, params={"stream": "true", "after": "-1"})
        assert whole.text.count("data: ") == last + 1
        await client.delete(f"/v1/sessions/{run['session_id']}")


async def test_a_refused_cors_preflight_is_json(
    upstream: ScriptedModelServer, tmp_path: Path
) -> None:
    settings = make_settings(upstream.url, tmp_path, cors_origins=["https://app.example"])
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            for origin, method in (
                ("https://evil.example", "POST"),
                ("https://app.example", "PUT"),
            ):
                preflight = {"Origin": origin, "Access-Control-Request-Method": method}
                refused = await client.options("/v1/response", headers=preflight)
                assert_error_shape(refused, 400, "cors_not_allowed")
            allowed = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
            answer = await client.options("/v1/response", headers=allowed)
            assert answer.status_code == 200
            assert answer.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        running.stop()
