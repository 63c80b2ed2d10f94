"""Sessions over HTTP, on a real server: titled by core after their first question, whichever
route started them, and truncated through the remote-storage route."""

from __future__ import annotations

import httpx
from http_support import MODEL, ThreadServer, assert_error_shape, user


async def test_a_run_titles_its_new_session(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        question = "  \nHow tall is the Eiffel tower?\nin metres please"
        done = await client.post("/v1/response", json={"messages": user(question), "stream": False})
        assert done.status_code == 200, done.text
        session_id = done.json()["session_id"]
        sessions = (await client.get("/v1/sessions", params={"limit": 500})).json()["sessions"]
        [info] = [s for s in sessions if s["id"] == session_id]
        assert info["title"] == "How tall is the Eiffel tower?"
        again = await client.post(
            "/v1/response",
            json={"messages": user("and in feet?"), "session_id": session_id, "stream": False},
        )
        assert again.status_code == 200, again.text
        stored = (await client.get(f"/api/v1/sessions/{session_id}")).json()
        assert stored["title"] == "How tall is the Eiffel tower?"  # the first question's


async def test_the_openai_route_titles_its_session_too(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        answer = await client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": user("name three rivers"), "stream": False},
            headers={"X-Session-Id": "rivers-1"},
        )
        assert answer.status_code == 200, answer.text
        assert (await client.get("/api/v1/sessions/rivers-1")).json()["title"] == (
            "name three rivers"
        )


async def test_a_title_given_by_hand_is_kept(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        first = await client.post(
            "/v1/response",
            json={"messages": user("first"), "session_id": "named-1", "stream": False},
        )
        assert first.status_code == 200, first.text
        renamed = await client.patch("/api/v1/sessions/named-1", json={"title": "Mine"})
        assert renamed.json()["title"] == "Mine"
        assert (await client.delete("/api/v1/sessions/named-1/messages")).status_code == 204
        await client.post(
            "/v1/response",
            json={"messages": user("second"), "session_id": "named-1", "stream": False},
        )
        assert (await client.get("/api/v1/sessions/named-1")).json()["title"] == "Mine"


async def test_truncate_route(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        messages = [{"role": "user", "content": f"m{i}"} for i in range(4)]
        appended = await client.post("/api/v1/sessions/cut-1/messages", json={"messages": messages})
        assert appended.status_code == 204
        path = "/api/v1/sessions/cut-1/messages/truncate"
        assert (await client.post(path, json={"keep": 2})).status_code == 204
        kept = (await client.get("/api/v1/sessions/cut-1/messages")).json()["messages"]
        assert [m["content"] for m in kept] == ["m0", "m1"]
        assert (await client.get("/api/v1/sessions/cut-1")).json()["message_count"] == 2
        assert (await client.post(path, json={"keep": 2})).status_code == 204  # again: no change
        error = assert_error_shape(await client.post(path, json={"keep": 3}), 400)
        assert "has 2" in error["message"]
        for bad in ({"keep": -1}, {"keep": "1"}, {"keep": True}, {}, {"keep": 1, "x": 0}):
            assert_error_shape(await client.post(path, json=bad), 422)
        missing = "/api/v1/sessions/nobody-1/messages/truncate"
        assert_error_shape(await client.post(missing, json={"keep": 0}), 404, "not_found")
        kept = (await client.get("/api/v1/sessions/cut-1/messages")).json()["messages"]
        assert len(kept) == 2  # nothing the refused calls asked for happened
