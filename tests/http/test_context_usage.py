"""Long sessions within the context window, and what a session used, over a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell import load_settings
from chat_shell.testing import ScriptedModelServer
from http_support import ThreadServer, assert_error_shape, user

PRICED = "openai/gpt-4o-mini"  # litellm's table knows its window and prices
LONG = "word " * 150


@pytest.fixture(scope="module")
def server(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    home: Path = tmp_path_factory.mktemp("context")
    settings = load_settings(
        home,
        environ={},
        read_file=False,
        model=PRICED,
        models={
            PRICED: {
                "api_base": upstream.url,
                "api_key": "sk-test-upstream",
                "context_window": 1000,
            }
        },
        retries=0,
        tools=[],
        storage="sqlite",
        storage_path=str(home / "history.db"),
        server={"rate_limit_per_minute": 0},
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


async def test_a_long_session_is_sent_in_part_and_the_run_status_says_so(
    server: ThreadServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bodies = []
        session = None
        for tag in ("first", "second", "third", "fourth"):
            body = {"messages": user(f"{tag} {LONG}"), "stream": False}
            if session:
                body["session_id"] = session
            answer = await client.post("/v1/response", json=body)
            assert answer.status_code == 200, answer.text
            bodies.append(answer.json())
            session = bodies[-1]["session_id"]
        assert [(b["messages_sent"], b["messages_dropped"]) for b in bodies] == [
            (1, 0),
            (3, 0),
            (3, 2),
            (3, 4),
        ]
        status = (await client.get(f"/v1/response/{bodies[-1]['subtask_id']}")).json()
        assert (status["messages_sent"], status["messages_dropped"]) == (3, 4)
        history = (await client.get(f"/v1/sessions/{session}/history")).json()["messages"]
        assert len(history) == 8  # the stored history stays complete

        # the complete event of a stream says the same
        async with client.stream(
            "POST",
            "/v1/response",
            json={"messages": user(f"fifth {LONG}"), "session_id": session},
            headers={"Accept": "text/event-stream"},
        ) as response:
            lines = [line async for line in response.aiter_lines()]
        complete = [line for line in lines if line.startswith("data:") and "messages_sent" in line]
        assert '"messages_sent":3' in complete[-1].replace(" ", "")
        assert '"messages_dropped":6' in complete[-1].replace(" ", "")


async def test_sessions_give_their_usage_and_cost(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        first = (
            await client.post("/v1/response", json={"messages": user("one"), "stream": False})
        ).json()
        session = first["session_id"]
        second = (
            await client.post(
                "/v1/response",
                json={"messages": user("two"), "session_id": session, "stream": False},
            )
        ).json()
        prompt = first["usage"]["prompt_tokens"] + second["usage"]["prompt_tokens"]
        completion = first["usage"]["completion_tokens"] + second["usage"]["completion_tokens"]
        info = await client.get(f"/v1/sessions/{session}")
        assert info.status_code == 200
        usage = info.json()["usage"]
        assert info.json()["id"] == session
        assert info.json()["message_count"] == 4
        assert (usage["calls"], usage["prompt_tokens"], usage["completion_tokens"]) == (
            2,
            prompt,
            completion,
        )
        assert usage["total_tokens"] == prompt + completion
        assert usage["cost"] == pytest.approx(prompt * 0.15e-6 + completion * 0.6e-6)
        assert usage["models"][PRICED]["cost"] == pytest.approx(usage["cost"])
        listed = (await client.get("/v1/sessions", params={"limit": 500})).json()["sessions"]
        assert next(s for s in listed if s["id"] == session)["usage"] == usage
        assert_error_shape(await client.get("/v1/sessions/no-such-session"), 404, "not_found")
