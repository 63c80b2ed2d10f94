"""Auth, ownership, limits, CORS, binding, and bad input: 4xx in one shape, nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell import UserError
from chat_shell.testing import ScriptedModelServer
from chat_shell_http import ServerSettings, hash_api_key
from http_support import ThreadServer, assert_error_shape, make_settings, user

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    home = tmp_path_factory.mktemp("secured")
    settings = make_settings(
        upstream.url,
        home,
        api_keys=[KEY_A],
        api_key_hashes=[hash_api_key(KEY_B)],
        rate_limit_per_minute=0,
        max_request_bytes=10_000,
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_keys_are_required_and_isolated(secured: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url, timeout=30) as client:
        for headers in ({}, auth("wrong-key-0123456789"), {"Authorization": KEY_A}):
            refused = await client.post(
                "/v1/response", json={"messages": user("x")}, headers=headers
            )
            assert_error_shape(refused, 401, "unauthorized")
            assert refused.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/v1/health")).status_code == 200  # liveness needs no key

        run = (
            await client.post(
                "/v1/response",
                json={"messages": user("mine"), "session_id": "a-1", "stream": False},
                headers=auth(KEY_A),
            )
        ).json()
        run_id = run["subtask_id"]
        assert run["content"] == "echo: mine"

        # Key B sees none of it: A's run is 404, A's session id names no session of B's.
        b = auth(KEY_B)
        assert_error_shape(await client.get(f"/v1/response/{run_id}", headers=b), 404)
        assert_error_shape(await client.get(f"/v1/response/{run_id}?stream=true", headers=b), 404)
        assert_error_shape(await client.delete(f"/v1/response/{run_id}", headers=b), 404)
        assert_error_shape(await client.get("/v1/sessions/a-1/history", headers=b), 404)
        assert_error_shape(await client.delete("/v1/sessions/a-1", headers=b), 404)
        got = await client.get("/api/v1/sessions/a-1/messages", headers=b)
        assert got.json() == {"messages": []}
        listed = (await client.get("/v1/sessions", headers=b)).json()["sessions"]
        assert "a-1" not in [s["id"] for s in listed]
        # B's own "a-1" is another session: B's turn there does not reach A's.
        theirs = await client.post(
            "/v1/response",
            json={"messages": user("intrude"), "session_id": "a-1", "stream": False},
            headers=b,
        )
        assert theirs.json()["session_id"] == "a-1"
        assert run_id not in theirs.text
        history = (await client.get("/v1/sessions/a-1/history", headers=b)).json()["messages"]
        assert [m["content"] for m in history] == ["intrude", "echo: intrude"]
        assert (await client.delete("/v1/sessions/a-1", headers=b)).status_code == 204

        # Key A still has it, untouched.
        a = auth(KEY_A)
        history = (await client.get("/v1/sessions/a-1/history", headers=a)).json()["messages"]
        assert [m["content"] for m in history] == ["mine", "echo: mine"]
        listed = (await client.get("/v1/sessions", headers=a)).json()["sessions"]
        assert [s["id"] for s in listed] == ["a-1"]


async def test_bad_input_is_refused_and_changes_nothing(secured: ThreadServer) -> None:
    a = auth(KEY_A)
    async with httpx.AsyncClient(base_url=secured.url, timeout=30, headers=a) as client:
        before = (await client.get("/v1/sessions")).json()
        post = "/v1/response"
        cases = [
            (
                client.post(
                    post, content=b"{not json", headers={"content-type": "application/json"}
                ),
                400,
                "invalid_json",
            ),
            (client.post(post, json={}), 422, "invalid_request"),
            (client.post(post, json={"messages": []}), 422, "invalid_request"),
            (client.post(post, json={"messages": [{"role": "user"}]}), 422, "invalid_request"),
            (client.post(post, json={"messages": user("")}), 400, "bad_request"),
            (client.post(post, json={"messages": user("   ")}), 400, "bad_request"),
            (
                client.post(post, json={"messages": [{"role": "assistant", "content": "x"}]}),
                400,
                "bad_request",
            ),
            (
                client.post(post, json={"messages": user("x"), "model": "openai/other"}),
                400,
                "model_not_allowed",
            ),
            (
                client.post(post, json={"messages": user("x"), "api_base": "http://evil"}),
                422,
                "invalid_request",
            ),
            (
                client.post(post, json={"messages": user("x"), "session_id": "../etc"}),
                400,
                "bad_request",
            ),
            (
                client.post(post, json={"messages": user("x"), "temperature": 9}),
                422,
                "invalid_request",
            ),
            (
                client.post(post, json={"messages": user("x"), "tools": ["nope"]}),
                400,
                "bad_request",
            ),
            (client.post(post, json={"messages": user("x" * 20_000)}), 413, "request_too_large"),
            (client.get("/v1/response/run_unknown"), 404, "not_found"),
            (client.delete("/v1/response/run_unknown"), 404, "not_found"),
            (client.get("/v1/sessions/unknown/history"), 404, "not_found"),
            (client.get("/v1/sessions?limit=0"), 422, "invalid_request"),
            (client.get("/v1/nowhere"), 404, "not_found"),
            (client.put("/v1/sessions"), 405, "method_not_allowed"),
        ]
        for request, status, code in cases:
            assert_error_shape(await request, status, code)

        # A chunked giant body (no Content-Length) is refused too.
        async def chunks():  # type: ignore[no-untyped-def]
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(100):
                yield b"x" * 1000
            yield b'"}]}'

        giant = await client.post(
            post, content=chunks(), headers={"content-type": "application/json"}
        )
        assert_error_shape(giant, 413, "request_too_large")

        done = (await client.post(post, json={"messages": user("x"), "stream": False})).json()
        for bad in ("abc", "-5", str(done["last_seq"] + 1)):
            response = await client.get(
                f"/v1/response/{done['subtask_id']}",
                headers={"Accept": "text/event-stream", "Last-Event-ID": bad},
            )
            assert_error_shape(response, 400, "bad_last_event_id")
        await client.delete(f"/v1/sessions/{done['session_id']}")
        assert (await client.get("/v1/sessions")).json() == before


async def test_the_anonymous_caller_on_this_machine_is_not_rate_limited(
    upstream: ScriptedModelServer, tmp_path: Path
) -> None:
    settings = make_settings(upstream.url, tmp_path, rate_limit_per_minute=3)
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            statuses = {(await client.get("/v1/sessions")).status_code for _ in range(20)}
            assert statuses == {200}
    finally:
        running.stop()


async def test_rate_limit(upstream: ScriptedModelServer, tmp_path: Path) -> None:
    settings = make_settings(
        upstream.url, tmp_path, rate_limit_per_minute=3, rate_limit_loopback=True
    )
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            statuses = [(await client.get("/v1/sessions")).status_code for _ in range(3)]
            assert statuses == [200, 200, 200]
            limited = await client.get("/v1/sessions")
            error = assert_error_shape(limited, 429, "rate_limited")
            assert error["retryable"] is True
            assert int(limited.headers["retry-after"]) >= 1
    finally:
        running.stop()


async def test_cors_off_unless_configured(
    secured: ThreadServer, upstream: ScriptedModelServer, tmp_path: Path
) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
    }
    async with httpx.AsyncClient(base_url=secured.url, timeout=30) as client:
        response = await client.options("/v1/response", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    settings = make_settings(upstream.url, tmp_path, cors_origins=["https://app.example"])
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            response = await client.options("/v1/response", headers=preflight)
            assert response.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        running.stop()


def test_refuses_public_bind_without_keys() -> None:
    with pytest.raises(UserError, match="without API keys"):
        ServerSettings(host="0.0.0.0").check_bind()
    ServerSettings(host="0.0.0.0", api_keys=[KEY_A]).check_bind()  # type: ignore[list-item]
    ServerSettings(host="0.0.0.0", insecure_no_auth=True).check_bind()
    ServerSettings(host="127.0.0.1").check_bind()
    ServerSettings(host="::1").check_bind()
    with pytest.raises(UserError):
        ServerSettings.from_settings(
            make_settings("http://127.0.0.1:1/v1", Path("/nonexistent"), bogus=1)
        )


def test_keys_are_kept_only_as_hashes() -> None:
    server = ServerSettings.model_validate({"api_keys": [KEY_A]})
    assert server.key_hashes == [hash_api_key(KEY_A)]
    assert KEY_A not in repr(server)
    assert KEY_A not in str(server.model_dump())
