"""Tool approval over HTTP through the real ``chat-shell serve``, the real MCP time server
(its tools need approval by default) and the scripted model: the run emits
``approval_required`` and waits; ``POST /v1/response/{run_id}/approvals`` answers it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from serve_support import ASK_TIME, TIME_TOML, Serve, script_env, sse_data, write_home

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_mcp")
pytest.importorskip("chat_shell_http")

KEY_A = "approval-key-a-0123456789"
KEY_B = "approval-key-b-0123456789"


def _serve(tmp_path: Path, upstream: ScriptedModelServer, server: str) -> Iterator[str]:
    tables = f"{TIME_TOML}[server]\napi_keys = {json.dumps([KEY_A, KEY_B])}\n{server}"
    home = write_home(tmp_path / "home", upstream.url, tables=tables)
    with Serve(script_env(home)) as serve:
        yield serve.url


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def serve(tmp_path: Path, upstream: ScriptedModelServer) -> Iterator[str]:
    yield from _serve(tmp_path, upstream, "")


@pytest.fixture
def serve_short_wait(tmp_path: Path, upstream: ScriptedModelServer) -> Iterator[str]:
    yield from _serve(tmp_path, upstream, "approval_timeout_seconds = 0.5\n")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Stream:
    """A run started with ``stream: true``, read event by event."""

    def __init__(self, client: httpx.Client, url: str, key: str = KEY_A) -> None:
        self._context = client.stream(
            "POST",
            f"{url}/v1/response",
            json={"messages": [{"role": "user", "content": ASK_TIME}]},
            headers=_auth(key),
            timeout=60,
        )
        response = self._context.__enter__()
        assert response.status_code == 200
        self._events = sse_data(response.iter_lines())
        self.seen: list[dict[str, Any]] = []

    def until(self, event_type: str) -> dict[str, Any]:
        for event in self._events:
            self.seen.append(event)
            if event["event_type"] == event_type:
                return event
        raise AssertionError(f"the stream ended before a {event_type} event: {self.seen}")

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _answer(url: str, run_id: str, body: Any, key: str = KEY_A) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/response/{run_id}/approvals", json=body, headers=_auth(key), timeout=30
    )


def test_an_approved_call_runs(serve: str) -> None:
    with httpx.Client() as client:
        stream = Stream(client, serve)
        asked = stream.until("approval_required")
        data = asked["data"]
        assert data["name"] == "time_get_current_time"
        assert data["arguments"] == {"timezone": "Asia/Tokyo"}
        assert data["expires_at"] > time.time()
        call = stream.seen[-2]
        assert call["event_type"] == "tool_call"
        assert call["data"]["id"] == data["id"]
        reply = _answer(serve, asked["run_id"], {"call_id": data["id"], "approved": True})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "run_id": asked["run_id"],
            "call_id": data["id"],
            "name": "time_get_current_time",
            "approved": True,
        }
        result = stream.until("tool_result")
        assert "Asia/Tokyo" in result["data"]["result"]
        complete = stream.until("complete")
        stream.close()
    assert complete["data"]["status"] == "completed"
    assert complete["data"]["content"].startswith("result: {")
    # answered, and the run ended: a second answer is refused
    again = _answer(serve, asked["run_id"], {"call_id": data["id"], "approved": False})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "approval_closed"


def test_a_refused_call_tells_the_model_not_approved(serve: str) -> None:
    with httpx.Client() as client:
        stream = Stream(client, serve)
        asked = stream.until("approval_required")
        call_id = asked["data"]["id"]
        reply = _answer(serve, asked["run_id"], [{"call_id": call_id, "approved": False}])
        assert reply.status_code == 200, reply.text
        assert [item["approved"] for item in reply.json()] == [False]
        # the first answer wins
        again = _answer(serve, asked["run_id"], {"call_id": call_id, "approved": True})
        assert again.status_code == 409
        complete = stream.until("complete")
        stream.close()
    assert complete["data"]["content"] == (
        "result: error: time_get_current_time was not approved: the user declined to run it"
    )


def test_an_unanswered_call_is_not_approved_after_the_timeout(serve_short_wait: str) -> None:
    with httpx.Client() as client:
        stream = Stream(client, serve_short_wait)
        asked = stream.until("approval_required")
        complete = stream.until("complete")
        stream.close()
    assert complete["data"]["content"] == (
        "result: error: time_get_current_time was not approved: no answer within 0.5 s"
    )
    late = _answer(
        serve_short_wait, asked["run_id"], {"call_id": asked["data"]["id"], "approved": True}
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "approval_closed"


def test_only_the_owning_key_may_answer(serve: str) -> None:
    with httpx.Client() as client:
        stream = Stream(client, serve)
        asked = stream.until("approval_required")
        run_id, call_id = asked["run_id"], asked["data"]["id"]
        other = _answer(serve, run_id, {"call_id": call_id, "approved": True}, key=KEY_B)
        unknown_run = _answer(serve, "run_" + "0" * 32, {"call_id": call_id, "approved": True})
        unknown_call = _answer(serve, run_id, {"call_id": "call_nope", "approved": True})
        for reply in (other, unknown_run, unknown_call):
            assert reply.status_code == 404, reply.text
            assert reply.json()["error"]["code"] == "not_found"
        bad = _answer(serve, run_id, {"call_id": call_id, "approved": "maybe"})
        assert bad.status_code == 422
        # the owner still can: the other key's try recorded nothing
        assert _answer(serve, run_id, {"call_id": call_id, "approved": False}).status_code == 200
        stream.until("complete")
        stream.close()


def test_a_reconnecting_client_sees_the_request_again(serve: str) -> None:
    with httpx.Client() as client:
        stream = Stream(client, serve)
        asked = stream.until("approval_required")
        stream.close()  # the client goes away; the run waits on
        run_id = asked["run_id"]
        with client.stream(
            "GET",
            f"{serve}/v1/response/{run_id}?stream=true",
            headers={**_auth(KEY_A), "Last-Event-ID": str(asked["seq"] - 1)},
            timeout=60,
        ) as response:
            assert response.status_code == 200
            events = sse_data(response.iter_lines())
            replayed = next(events)
            assert replayed == asked
            reply = _answer(serve, run_id, {"call_id": asked["data"]["id"], "approved": True})
            assert reply.status_code == 200, reply.text
            rest = [event["event_type"] for event in events]
    assert rest[0] == "tool_result"
    assert rest[-1] == "complete"
