"""/v1/response against a real uvicorn server and the scripted upstream: stream, resume, cancel."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from http_support import Frame, ThreadServer, assert_error_shape, sse_frames, user


async def collect(response: httpx.Response) -> list[Frame]:
    return [frame async for frame in sse_frames(response)]


async def wait_done(client: httpx.AsyncClient, run_id: str, timeout: float = 30) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = (await client.get(f"/v1/response/{run_id}")).json()
        if body["status"] not in ("queued", "running"):
            return body
        assert loop.time() < deadline, body
        await asyncio.sleep(0.02)


def check_sequence(frames: list[Frame]) -> None:
    assert [f.id for f in frames] == list(range(len(frames)))
    assert [f.data["seq"] for f in frames] == list(range(len(frames)))
    assert [f.event for f in frames] == [f.data["event_type"] for f in frames]
    assert frames[-1].event == "complete"


async def test_stream_run_end_to_end(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("tokens 5"), "stream": True}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            run_id = response.headers["x-subtask-id"]
            frames = await collect(response)
        check_sequence(frames)
        assert [f.data["data"]["delta"] for f in frames if f.event == "content"] == [
            f"t{i} " for i in range(5)
        ]
        complete = frames[-1].data["data"]
        assert complete["status"] == "completed"
        assert complete["content"] == "t0 t1 t2 t3 t4 "
        assert {f.data["run_id"] for f in frames} == {run_id}
        session_id = frames[0].data["session_id"]

        status = (await client.get(f"/v1/response/{run_id}")).json()
        assert status["status"] == "completed"
        assert status["subtask_id"] == run_id
        assert status["content"] == "t0 t1 t2 t3 t4 "
        assert status["usage"]["total_tokens"] > 0
        assert status["finished_at"] >= status["started_at"] >= status["created_at"]
        assert status["last_seq"] == len(frames) - 1

        history = (await client.get(f"/v1/sessions/{session_id}/history")).json()
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
        assert history["messages"][1]["content"] == "t0 t1 t2 t3 t4 "

        sessions = (await client.get("/v1/sessions", params={"limit": 500})).json()
        assert session_id in [s["id"] for s in sessions["sessions"]]

        # Re-attach to the finished run: the whole stream again, identical.
        async with client.stream(
            "GET", f"/v1/response/{run_id}", headers={"Accept": "text/event-stream"}
        ) as again:
            replay = await collect(again)
        assert [f.data for f in replay] == [f.data for f in frames]


async def test_non_streaming_and_continued_session(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        first = await client.post("/v1/response", json={"messages": user("hello"), "stream": False})
        assert first.status_code == 200
        body = first.json()
        assert body["status"] == "completed"
        assert body["content"] == "echo: hello"
        session_id = body["session_id"]
        second = await client.post(
            "/v1/response",
            json={
                "messages": user("again"),
                "session_id": session_id,
                "stream": False,
                "model": "openai/scripted",
                "temperature": 0.5,
            },
        )
        assert second.json()["content"] == "echo: again"
        history = (await client.get(f"/v1/sessions/{session_id}/history")).json()["messages"]
        assert [m["content"] for m in history] == ["hello", "echo: hello", "again", "echo: again"]
        last_two = await client.get(f"/v1/sessions/{session_id}/history", params={"limit": 2})
        assert [m["content"] for m in last_two.json()["messages"]] == ["again", "echo: again"]


async def test_tool_call_events(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/v1/response",
            json={"messages": user('call calculator {"expression": "6*7"}')},
        ) as response:
            frames = await collect(response)
        check_sequence(frames)
        kinds = [f.event for f in frames]
        assert "tool_call" in kinds
        assert "tool_result" in kinds
        result = next(f for f in frames if f.event == "tool_result").data["data"]
        assert result["name"] == "calculator"
        assert frames[-1].data["data"]["content"].startswith("result: 42")


async def test_resume_after_100_dropped_connections(server: ThreadServer) -> None:
    """Drop the connection 100 times mid-run; the events read across all of them are exactly
    the run's events, once each, in order."""
    rng = random.Random(7)
    seen: list[Frame] = []
    drops = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("slow 600 4")}
        ) as response:
            run_id = response.headers["x-subtask-id"]
            async for frame in sse_frames(response):
                seen.append(frame)
                if len(seen) >= 2:
                    break
        drops += 1
        while True:
            take = rng.randint(1, 4)
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(seen[-1].id)}
            finished = False
            async with client.stream("GET", f"/v1/response/{run_id}", headers=headers) as resp:
                assert resp.status_code == 200
                got = 0
                async for frame in sse_frames(resp):
                    seen.append(frame)
                    got += 1
                    if frame.event == "complete":
                        finished = True
                        break
                    if drops < 100 and got >= take:
                        break
            if finished:
                break
            drops += 1
    assert drops >= 100
    check_sequence(seen)
    content = "".join(f.data["data"]["delta"] for f in seen if f.event == "content")
    assert content == "".join(f"t{i} " for i in range(600))


async def test_resume_with_query_parameter(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = (
            await client.post("/v1/response", json={"messages": user("tokens 6"), "stream": False})
        ).json()
        run_id = body["subtask_id"]
        async with client.stream(
            "GET", f"/v1/response/{run_id}", params={"stream": "true", "after": 3}
        ) as response:
            frames = await collect(response)
        assert [f.id for f in frames] == list(range(4, body["last_seq"] + 1))


async def test_cancel_mid_stream(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("slow 2000 5")}
        ) as response:
            run_id = response.headers["x-subtask-id"]
            frames: list[Frame] = []
            watcher_frames: list[Frame] = []

            async def watch() -> None:
                async with client.stream(
                    "GET", f"/v1/response/{run_id}", params={"stream": "true"}
                ) as other:
                    watcher_frames.extend(await collect(other))

            watcher = asyncio.create_task(watch())
            cancelled = None
            async for frame in sse_frames(response):
                frames.append(frame)
                if len(frames) == 5:
                    cancelled = await client.delete(f"/v1/response/{run_id}")
            await watcher
        assert cancelled is not None
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        for stream in (frames, watcher_frames):
            check_sequence(stream)
            assert stream[-1].data["data"]["status"] == "cancelled"
        partial = frames[-1].data["data"]["content"]
        assert 0 < len(partial) < len("".join(f"t{i} " for i in range(2000)))

        again = await client.delete(f"/v1/response/{run_id}")
        assert again.status_code == 200
        assert again.json()["status"] == "cancelled"

        session_id = frames[0].data["session_id"]
        history = (await client.get(f"/v1/sessions/{session_id}/history")).json()["messages"]
        assert history[-1]["role"] == "assistant"
        assert history[-1]["metadata"]["status"] == "cancelled"
        assert history[-1]["content"] == partial

        done = await client.post("/v1/response", json={"messages": user("x"), "stream": False})
        ended = await client.delete(f"/v1/response/{done.json()['subtask_id']}")
        assert_error_shape(ended, 409, "run_finished")


async def test_disconnect_does_not_stop_the_run(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("slow 50 5")}
        ) as response:
            run_id = response.headers["x-subtask-id"]
            async for _ in sse_frames(response):
                break
        final = await wait_done(client, run_id)
        assert final["status"] == "completed"
        assert final["content"] == "".join(f"t{i} " for i in range(50))


async def test_cancel_on_disconnect(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/v1/response",
            json={"messages": user("slow 2000 5"), "cancel_on_disconnect": True},
        ) as response:
            run_id = response.headers["x-subtask-id"]
            async for _ in sse_frames(response):
                break
        final = await wait_done(client, run_id)
        assert final["status"] == "cancelled"


async def test_busy_session_answers_409(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("slow 400 5"), "session_id": "busy-1"}
        ) as response:
            run_id = response.headers["x-subtask-id"]
            async for _ in sse_frames(response):
                break
            second = await client.post(
                "/v1/response", json={"messages": user("hi"), "session_id": "busy-1"}
            )
            error = assert_error_shape(second, 409, "session_busy")
            assert error["retryable"] is True
            deleting = await client.delete("/v1/sessions/busy-1")
            assert_error_shape(deleting, 409, "session_busy")
        await client.delete(f"/v1/response/{run_id}")
        history = (await client.get("/v1/sessions/busy-1/history")).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == ["slow 400 5"]


async def test_provider_error_text_never_reaches_clients(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream(
            "POST", "/v1/response", json={"messages": user("fail 400")}
        ) as response:
            text = (await response.aread()).decode()
        assert "event: error" in text
        for leak in ("secret", "sk-", "127.0.0.1"):
            assert leak not in text
        assert '"status":"failed"' in text
        run_id = response.headers["x-subtask-id"]
        status = (await client.get(f"/v1/response/{run_id}")).text
        assert "secret" not in status
        assert "sk-" not in status


async def test_delete_session(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await client.post(
            "/v1/response", json={"messages": user("x"), "session_id": "gone-1", "stream": False}
        )
        assert (await client.delete("/v1/sessions/gone-1")).status_code == 204
        assert_error_shape(await client.get("/v1/sessions/gone-1/history"), 404, "not_found")
        assert_error_shape(await client.delete("/v1/sessions/gone-1"), 404, "not_found")


async def test_health_and_docs(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        health = (await client.get("/v1/health")).json()
        assert health["status"] == "ok"
        assert health["storage"] == "reachable"
        assert (await client.get("/docs")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        for path in (
            "/v1/response",
            "/v1/response/{run_id}",
            "/v1/sessions",
            "/v1/sessions/{session_id}/history",
            "/v1/sessions/{session_id}",
            "/v1/health",
            "/api/v1/sessions/{session_id}/messages",
        ):
            assert path in schema["paths"], path
        assert "ChatEvent" not in schema["components"]["schemas"] or True


@pytest.mark.parametrize("count", [200])
async def test_many_concurrent_streams_all_complete(server: ThreadServer, count: int) -> None:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:

        async def one(i: int) -> list[Frame]:
            async with client.stream(
                "POST", "/v1/response", json={"messages": user("tokens 20")}
            ) as response:
                assert response.status_code == 200
                return await collect(response)

        results = await asyncio.gather(*(one(i) for i in range(count)))
    for frames in results:
        check_sequence(frames)
        assert frames[-1].data["data"]["status"] == "completed"
        assert frames[-1].data["data"]["content"] == "".join(f"t{i} " for i in range(20))


def test_the_documented_python_client_works(server: ThreadServer) -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text()
    code = next(
        block
        for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL)
        if "def chat(" in block
    )
    namespace: dict = {}
    exec(compile(code, "docs/http.md", "exec"), namespace)
    assert namespace["chat"](server.url, "any-key", "tokens 4") == "t0 t1 t2 t3 "
