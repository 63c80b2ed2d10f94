"""/v1/chat/completions and /v1/models over plain HTTP: every error in OpenAI's shape (and only
there), model failures before and during an answer, keys, limits, and clients that hang up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import ThreadServer, assert_error_shape, make_settings, user
from openai_support import MODEL, assert_openai_error, openai_responder, read_stream, turn

URL = "/v1/chat/completions"
KEY = "openai-route-key-0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=openai_responder) as server:
        yield server


@pytest.fixture(scope="module")
def keyed(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("keyed"),
        api_keys=[KEY],
        rate_limit_per_minute=0,
        max_request_bytes=4096,
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


def user_message(**fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": "hi", **fields}


# (request body, status, code, param): each refused before anything runs.
REFUSED: list[tuple[Any, int, str, str | None]] = [
    ({"model": "openai/unknown", "messages": [user_message()]}, 404, "model_not_found", None),
    ({"messages": [user_message()]}, 422, "invalid_request", "model"),
    ({"model": MODEL}, 422, "invalid_request", "messages"),
    ({"model": MODEL, "messages": []}, 422, "invalid_request", "messages"),
    (
        {"model": MODEL, "messages": [{"role": "assistant", "content": "hi"}]},
        422,
        "invalid_request",
        "messages",
    ),
    (
        {
            "model": MODEL,
            "messages": [user_message(), {"role": "tool", "tool_call_id": "c", "content": "1"}],
        },
        422,
        "invalid_request",
        "messages",
    ),
    (
        {"model": MODEL, "messages": [{"role": "function", "content": "x"}]},
        422,
        "invalid_request",
        "messages.0.role",
    ),
    ({"model": MODEL, "messages": [{"role": "user"}]}, 422, "invalid_request", "messages.0"),
    (
        {
            "model": MODEL,
            "messages": [user_message(content=[{"type": "image_url", "image_url": {"url": "x"}}])],
        },
        422,
        "invalid_request",
        "messages.0.content",
    ),
    (
        {
            "model": MODEL,
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
                user_message(),
            ],
        },
        422,
        "invalid_request",
        "messages.0.tool_calls.0.function.arguments",
    ),
    (turn("hi", n=2), 422, "invalid_request", "n"),
    (
        turn("hi", tools=[{"type": "function", "function": {"name": "mine"}}]),
        422,
        "invalid_request",
        "tools",
    ),
    (turn("hi", functions=[{"name": "mine"}]), 422, "invalid_request", "functions"),
    (turn("hi", tool_choice="required"), 422, "invalid_request", "tool_choice"),
    (
        turn("hi", tool_choice={"type": "function", "function": {"name": "calculator"}}),
        422,
        "invalid_request",
        "tool_choice",
    ),
    (turn("hi", stop=["\n"]), 422, "invalid_request", "stop"),
    (
        turn("hi", response_format={"type": "json_object"}),
        422,
        "invalid_request",
        "response_format",
    ),
    (turn("hi", logprobs=True), 422, "invalid_request", "logprobs"),
    (turn("hi", temperature=3), 422, "invalid_request", "temperature"),
    (turn("hi", max_tokens=0), 422, "invalid_request", "max_tokens"),
    (turn("hi", metadata={"session_id": 7}), 422, "invalid_request", "metadata"),
    (turn("   "), 400, "user_error", None),
    ("not json", 400, "invalid_json", None),
    ([1, 2], 422, "invalid_request", None),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), REFUSED)
@pytest.mark.parametrize("stream", [False, True])
async def test_refused_requests_answer_the_openai_shape_and_change_nothing(
    server: ThreadServer, body: Any, status: int, code: str, param: str | None, stream: bool
) -> None:
    if isinstance(body, dict) and stream:
        body = {**body, "stream": True}
    content = body if isinstance(body, str) else json.dumps(body)
    runs = (server.state.runs.active_count, server.state.runs.started_count)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        before = (await client.get("/v1/sessions")).json()
        response = await client.post(
            URL, content=content, headers={"Content-Type": "application/json"}
        )
        error = assert_openai_error(response, status, code)
        assert error["param"] == param
        if param is not None:
            assert error["message"].startswith(f"{param}: ")
        assert (await client.get("/v1/sessions")).json() == before
    assert (server.state.runs.active_count, server.state.runs.started_count) == runs


async def test_the_other_routes_keep_their_own_shape(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        native = await client.post("/v1/response", json={"messages": [], "model": MODEL})
        assert_error_shape(native, 422, "invalid_request")
        assert "details" in native.json()["error"]
        assert "type" not in native.json()["error"]
        unknown = await client.post("/v1/response", json={"messages": user("x"), "model": "nope"})
        assert_error_shape(unknown, 400, "model_not_allowed")
        assert set(unknown.json()["error"]) == {"code", "message", "retryable"}
        # The Host check (no keys: loopback names only) answers before anything else.
        for method, path in (("POST", URL), ("GET", "/v1/models")):
            refused = await client.request(
                method, path, json=turn("hi"), headers={"Host": "evil.example"}
            )
            assert_openai_error(refused, 400, "host_not_allowed")
        for method, path in (("GET", URL), ("DELETE", "/v1/models"), ("PUT", URL)):
            response = await client.request(method, path)
            error = assert_openai_error(response, 405, "method_not_allowed")
            assert error["message"]
            assert response.headers["allow"] in ("POST", "GET")


async def test_keys_limits_and_busy_sessions_answer_the_openai_shape(keyed: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=keyed.url, timeout=30) as client:
        for path, method in ((URL, "POST"), ("/v1/models", "GET")):
            for headers in (
                {},
                {"Authorization": "Bearer wrong-key-0123456789"},
                {"Authorization": KEY},
            ):
                response = await client.request(method, path, json=turn("hi"), headers=headers)
                assert_openai_error(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"
        client.headers["Authorization"] = f"Bearer {KEY}"
        assert (await client.get("/v1/models")).json()["data"][0]["id"] == MODEL
        too_big = await client.post(URL, json=turn("x" * 5000))
        assert_openai_error(too_big, 413, "request_too_large")
        compressed = await client.post(
            URL,
            content=b"x",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert_openai_error(compressed, 415, "unsupported_content_encoding")
        bad_host = await client.get("/v1/models", headers={"Host": "evil.example"})
        assert bad_host.status_code == 200  # a server with keys answers any Host by default

        async with client.stream(
            "POST", URL, json=turn("slow 400 20", stream=True), headers={"X-Session-Id": "oa-busy"}
        ) as running:
            assert running.status_code == 200
            busy = await client.post(URL, json=turn("again"), headers={"X-Session-Id": "oa-busy"})
            error = assert_openai_error(busy, 409, "session_busy")
            assert error["retryable"] is True
            assert busy.headers["retry-after"] == "1"
            await client.delete(f"/v1/response/{running.headers['x-subtask-id']}")


async def test_the_rate_limit_answers_429_in_the_openai_shape(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("rate"),
        rate_limit_per_minute=2,
        rate_limit_loopback=True,  # this test's client is on the machine itself
    )
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            answers = [await client.get("/v1/models") for _ in range(3)]
    finally:
        running.stop()
    assert [a.status_code for a in answers[:2]] == [200, 200]
    error = assert_openai_error(answers[2], 429, "rate_limited")
    assert error["retryable"] is True
    assert int(answers[2].headers["retry-after"]) >= 1


@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_failure_before_any_output_is_an_error_status(
    server: ThreadServer, stream: bool
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for upstream_status in (500, 503):
            response = await client.post(URL, json=turn(f"fail {upstream_status}", stream=stream))
            error = assert_openai_error(response, 503)  # the provider failed; retry may help
            assert error["retryable"] is True
            run = (await client.get(f"/v1/response/{response.headers['x-subtask-id']}")).json()
            assert run["status"] == "failed"


async def test_a_model_failure_mid_answer(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(URL, json=turn("midfail", stream=True))
        assert response.status_code == 200  # the answer had begun
        chunks, done = read_stream(response)
        assert not done  # an error ends the stream: no [DONE]
        *answer, failure = chunks
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in answer) == "t0 t1 t2 "
        assert set(failure) == {"error"}
        assert set(failure["error"]) == {"message", "type", "param", "code", "retryable"}
        assert failure["error"]["type"] == "server_error"
        assert "sk-upstream" not in response.text

        whole = await client.post(URL, json=turn("midfail"))
        assert_openai_error(whole, whole.status_code)
        assert whole.status_code >= 500


async def wait_finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        run: dict[str, Any] = (await client.get(f"/v1/response/{run_id}")).json()
        if run["status"] not in ("queued", "running"):
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} still running")


async def test_a_client_that_hangs_up_mid_stream_cancels_its_run(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", URL, json=turn("slow 2000 5", stream=True), headers={"X-Session-Id": "oa-gone"}
        ) as response:
            run_id = response.headers["x-subtask-id"]
            lines = response.aiter_lines()
            seen = [line async for line in _take(lines, 6)]
            assert any('"content":"t1 "' in line for line in seen)
        run = await wait_finished(client, run_id)
        assert run["status"] == "cancelled"
        assert run["content"].startswith("t0 t1 ")
        assert len(run["content"]) < len("t0 ") * 2000
        history = (await client.get("/v1/sessions/oa-gone/history")).json()["messages"]
        assert history[-1]["metadata"]["status"] == "cancelled"
    assert server.state.runs.streams == 0


async def _take(lines: Any, count: int) -> Any:
    async for line in lines:
        if line:
            yield line
            count -= 1
            if count == 0:
                return


def finished_run(server: ThreadServer, session_id: str) -> dict[str, Any]:
    """The status of a session's ended run (the client never learnt its id): the id read from
    the run store's file, the status from the server."""
    path = server.state.settings.storage_path
    for _ in range(500):
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT run_id FROM runs WHERE session_id = ? AND status NOT IN"
                " ('queued', 'running') ORDER BY created_at DESC",
                (session_id,),
            ).fetchall()
        if rows and server.state.runs.active_count == 0:
            answer = httpx.get(f"{server.url}/v1/response/{rows[0][0]}", timeout=30)
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.02)
    raise AssertionError(f"no finished run in {session_id}")


@pytest.mark.parametrize(("text", "stream"), [("slow 2000 5", False), ("late", True)])
async def test_a_client_that_hangs_up_while_waiting_cancels_its_run(
    server: ThreadServer, text: str, stream: bool
) -> None:
    """Before any answer was sent: waiting for a whole answer, or for a stream's first token
    (the upstream sends it after 3 s)."""
    session = f"oa-wait-{stream}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                URL, json=turn(text, stream=stream), headers={"X-Session-Id": session}, timeout=0.5
            )
        run = await asyncio.to_thread(finished_run, server, session)
        assert run["status"] == "cancelled"
        assert run["finished_at"] - run["created_at"] < 2.5  # not when the answer would have ended
        history = (await client.get(f"/v1/sessions/{session}/history")).json()["messages"]
        assert history[0]["content"] == text
        if not stream:
            assert history[-1]["metadata"]["status"] == "cancelled"


async def test_a_browser_may_send_the_session_header(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = make_settings(
        upstream.url, tmp_path_factory.mktemp("cors"), cors_origins=["https://app.example"]
    )
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            preflight = {
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, x-session-id",
            }
            allowed = await client.options(URL, headers=preflight)
            assert allowed.status_code == 200
            assert "x-session-id" in allowed.headers["access-control-allow-headers"].lower()
            refused = await client.options(
                URL, headers={**preflight, "Access-Control-Request-Headers": "x-other"}
            )
            assert_openai_error(refused, 400, "cors_not_allowed")
            answer = await client.post(
                URL,
                json=turn("hi"),
                headers={"Origin": "https://app.example", "X-Session-Id": "oa-cors"},
            )
            exposed = answer.headers["access-control-expose-headers"].lower()
            assert "x-session-id" in exposed
            assert "x-subtask-id" in exposed
    finally:
        running.stop()
