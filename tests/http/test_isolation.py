"""Another key's session is, on every endpoint, indistinguishable from a missing one, and no
answer carries another key's ids. Session ids are per key: key B using the id of key A's
session (busy, finished, or made through remote storage) gets exactly what it gets for an id
nobody uses - its own session of that id - and A's session is untouched."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import MODEL, ThreadServer, make_settings, user

KEY_A = "isolation-key-a-0123456789"
KEY_B = "isolation-key-b-0123456789"
SECRET = "only A may read this"

# What key B does with a session id and a run id it did not make, in order: first as a key
# that has no such session, then writing its own session of that id, then deleting it again.
# Every route of the app is here (checked against app.routes below).
SCENARIO: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/sessions/{session_id}/history", {}),
    ("GET", "/v1/sessions/{session_id}/history", {"params": {"limit": 1}}),
    ("DELETE", "/v1/sessions/{session_id}", {}),
    ("GET", "/v1/sessions/{session_id}", {}),
    ("GET", "/api/v1/sessions/{session_id}/usage", {}),
    ("GET", "/api/v1/sessions/{session_id}", {}),
    ("PATCH", "/api/v1/sessions/{session_id}", {"json": {"title": "mine"}}),
    ("DELETE", "/api/v1/sessions/{session_id}", {}),
    ("GET", "/api/v1/sessions/{session_id}/messages", {}),
    ("GET", "/api/v1/sessions/{session_id}/messages", {"params": {"limit": 5}}),
    ("DELETE", "/api/v1/sessions/{session_id}/messages", {}),
    ("POST", "/api/v1/sessions/{session_id}/messages/truncate", {"json": {"keep": 0}}),
    ("GET", "/v1/response/{run_id}", {}),
    ("GET", "/v1/response/{run_id}", {"params": {"stream": "true"}}),
    (
        "GET",
        "/v1/response/{run_id}",
        {"headers": {"Accept": "text/event-stream", "Last-Event-ID": "0"}},
    ),
    ("POST", "/v1/response/{run_id}/approvals", {"json": {"call_id": "call_0", "approved": True}}),
    ("DELETE", "/v1/response/{run_id}", {}),
    ("GET", "/v1/sessions", {}),
    ("GET", "/api/v1/sessions", {}),
    ("GET", "/v1/health", {}),
    ("GET", "/v1/config", {}),
    (
        "POST",
        "/v1/response",
        {"json": {"messages": user("b one"), "session_id": "{session_id}", "stream": False}},
    ),
    ("POST", "/v1/response", {"json": {"messages": user("b two"), "session_id": "{session_id}"}}),
    ("GET", "/v1/sessions/{session_id}/history", {}),
    ("GET", "/v1/sessions/{session_id}", {}),
    ("GET", "/api/v1/sessions/{session_id}/usage", {}),
    ("GET", "/v1/sessions", {}),
    (
        "POST",
        "/api/v1/sessions/{session_id}/messages",
        {"json": {"messages": [{"role": "user", "content": "b three"}], "owner": "bee"}},
    ),
    ("GET", "/api/v1/sessions/{session_id}/messages", {}),
    ("POST", "/api/v1/sessions/{session_id}/messages/truncate", {"json": {"keep": 1}}),
    ("PATCH", "/api/v1/sessions/{session_id}", {"json": {"title": "mine"}}),
    ("GET", "/api/v1/sessions/{session_id}", {}),
    ("GET", "/api/v1/sessions", {"params": {"owner": "bee"}}),
    ("DELETE", "/api/v1/sessions/{session_id}/messages", {}),
    ("DELETE", "/v1/sessions/{session_id}", {}),
    (
        "POST",
        "/api/v1/sessions/{session_id}/messages",
        {"json": {"messages": [{"role": "user", "content": "b four"}]}},
    ),
    ("DELETE", "/api/v1/sessions/{session_id}", {}),
    ("GET", "/v1/sessions", {}),
    # The OpenAI-compatible routes, with the session id as header and as metadata.
    (
        "POST",
        "/v1/chat/completions",
        {
            "json": {"model": MODEL, "messages": user("b five"), "stream": False},
            "headers": {"X-Session-Id": "{session_id}"},
        },
    ),
    (
        "POST",
        "/v1/chat/completions",
        {
            "json": {
                "model": MODEL,
                "messages": user("b six"),
                "stream": True,
                "metadata": {"session_id": "{session_id}"},
            }
        },
    ),
    ("GET", "/v1/sessions/{session_id}/history", {}),
    ("DELETE", "/v1/sessions/{session_id}", {}),
    ("GET", "/v1/models", {}),
]

_RUN_ID = re.compile(r"run_[0-9a-f]{16,}")
_TIMES = {"created_at", "updated_at", "started_at", "finished_at", "timestamp", "created"}


def owner_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_times(v)
            for k, v in value.items()
            if k not in _TIMES and not k.endswith("_ms") and k != "active_runs"
        }
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def normalized(response: httpx.Response, session_id: str, run_id: str) -> dict[str, Any]:
    """The answer with the ids that differ by design (the id asked for, run ids) and the
    clock taken out."""

    def clean(text: str) -> str:
        return _RUN_ID.sub("<run>", text.replace(run_id, "<asked-run>")).replace(
            session_id, "<session>"
        )

    body: Any = clean(response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        body = _without_times(json.loads(body))
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        body = [
            _without_times(json.loads(line[6:]))
            for line in body.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
    headers = {
        name: clean(response.headers[name])
        for name in ("content-type", "x-session-id", "x-subtask-id", "allow", "retry-after")
        if name in response.headers
    }
    return {"status": response.status_code, "headers": headers, "body": body}


@pytest.fixture(scope="module")
def two_keys(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("two-keys"),
        api_keys=[KEY_A, KEY_B],
        rate_limit_per_minute=0,
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


def test_the_scenario_covers_every_route(two_keys: ThreadServer) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in two_keys.app.openapi()["paths"].items()
        for method in operations
    }
    assert routes == {(method, path) for method, path, _ in SCENARIO}


async def run_scenario(
    client: httpx.AsyncClient, session_id: str, run_id: str
) -> list[tuple[httpx.Response, dict[str, Any]]]:
    answers = []
    for method, path, options in SCENARIO:
        url = path.format(session_id=session_id, run_id=run_id)
        kwargs = json.loads(json.dumps(options).replace("{session_id}", session_id))
        response = await client.request(method, url, **kwargs)
        answers.append((response, normalized(response, session_id, run_id)))
    return answers


async def test_another_keys_session_looks_missing_on_every_endpoint(
    two_keys: ThreadServer,
) -> None:
    a = httpx.AsyncClient(base_url=two_keys.url, headers=auth(KEY_A), timeout=30)
    b = httpx.AsyncClient(base_url=two_keys.url, headers=auth(KEY_B), timeout=30)
    async with a, b:
        # Key A: a finished run, a run still going, a session made through remote storage.
        done = await a.post(
            "/v1/response",
            json={"messages": user(SECRET), "session_id": "a-done", "stream": False},
        )
        done_run = done.json()["run_id"]
        async with a.stream(
            "POST",
            "/v1/response",
            json={"messages": user("slow 400 50"), "session_id": "a-busy"},
        ) as busy:
            busy_run = busy.headers["x-subtask-id"]
        stored = [{"role": "user", "content": SECRET}]
        assert (
            await a.post("/api/v1/sessions/a-store/messages", json={"messages": stored})
        ).status_code == 204
        before = {
            sid: (await a.get(f"/v1/sessions/{sid}/history")).json()
            for sid in ("a-done", "a-store")
        }

        # The same scenario for an id nobody uses, and for each of A's.
        baseline = [n for _, n in await run_scenario(b, "nobody-uses-this", "run_" + "0" * 32)]
        assert baseline[0]["status"] == 404  # sanity: the scenario does read, then write
        listing = SCENARIO.index(("GET", "/v1/sessions", {}))
        assert baseline[listing]["status"] == 200
        seen: list[httpx.Response] = []
        for sid, rid in (("a-busy", busy_run), ("a-done", done_run), ("a-store", done_run)):
            answers = await run_scenario(b, sid, rid)
            seen += [response for response, _ in answers]
            for (method, path, _), (_, got), expected in zip(
                SCENARIO, answers, baseline, strict=True
            ):
                assert got == expected, (sid, method, path)
            if sid == "a-busy":  # B's turns in "a-busy" ran while A's run there was going
                assert (await a.get(f"/v1/response/{busy_run}")).json()["status"] == "running"

        # No answer to B carries A's ids or A's words (but the id B itself asked about).
        for response in seen:
            text = response.text + json.dumps(dict(response.headers))
            asked = str(response.request.url) + response.request.content.decode()
            for secret in (done_run, busy_run, owner_id(KEY_A), SECRET):
                assert secret not in text or secret in asked, (response.request.url, secret)

        # A's sessions are untouched.
        for sid, history in before.items():
            assert (await a.get(f"/v1/sessions/{sid}/history")).json() == history
        cancelled = (await a.delete(f"/v1/response/{busy_run}")).json()
        assert cancelled["status"] == "cancelled"
        busy_history = (await a.get("/v1/sessions/a-busy/history")).json()["messages"]
        assert busy_history[0]["content"] == "slow 400 50"
        assert not any(m["content"].startswith(("b ", "echo: b")) for m in busy_history)
        listed = {s["id"] for s in (await a.get("/v1/sessions")).json()["sessions"]}
        assert listed == {"a-done", "a-busy", "a-store"}


async def test_ids_stay_per_key_and_the_longest_ones_are_said(two_keys: ThreadServer) -> None:
    a = httpx.AsyncClient(base_url=two_keys.url, headers=auth(KEY_A), timeout=30)
    async with a:
        longest = "x" * (128 - len(owner_id(KEY_A)) - 1)
        body = {"messages": [{"role": "user", "content": "hi"}]}
        assert (await a.post(f"/api/v1/sessions/{longest}/messages", json=body)).status_code == 204
        info = (await a.get(f"/api/v1/sessions/{longest}")).json()
        assert info["id"] == longest
        too_long = longest + "x"
        refused = await a.post(f"/api/v1/sessions/{too_long}/messages", json=body)
        assert refused.status_code == 400
        assert f"at most {len(longest)} characters" in refused.json()["error"]["message"]
        await a.delete(f"/api/v1/sessions/{longest}")


async def test_a_keys_session_stored_under_its_plain_id_stays_its_own(
    two_keys: ThreadServer,
) -> None:
    """A session a key made before ids were per key (stored as ``s``, not ``key-…:s``)."""
    from chat_shell import Message

    history = two_keys.state.history
    owner = owner_id(KEY_A)
    two_keys.call(
        history.append_messages("older-one", [Message(role="user", content=SECRET)], owner=owner)
    )
    a = httpx.AsyncClient(base_url=two_keys.url, headers=auth(KEY_A), timeout=30)
    b = httpx.AsyncClient(base_url=two_keys.url, headers=auth(KEY_B), timeout=30)
    async with a, b:
        mine = (await a.get("/v1/sessions/older-one/history")).json()["messages"]
        assert [m["content"] for m in mine] == [SECRET]
        assert "older-one" in {s["id"] for s in (await a.get("/v1/sessions")).json()["sessions"]}
        assert (await b.get("/v1/sessions/older-one/history")).status_code == 404
        assert (await b.get("/api/v1/sessions/older-one/messages")).json() == {"messages": []}
        assert (await a.delete("/v1/sessions/older-one")).status_code == 204
