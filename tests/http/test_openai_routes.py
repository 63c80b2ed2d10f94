"""/v1/chat/completions and /v1/models over plain HTTP: the answer, the stream's wire format,
tool activity and thinking in the extension fields, usage, finish_reason, the conversation as
context, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_shell import ModelConfig
from chat_shell.testing import ScriptedModelServer
from chat_shell_http._openai_schemas import ChatCompletion, ChatCompletionChunk
from http_support import ThreadServer, make_settings
from openai_support import MODEL, assert_openai_error, openai_responder, read_stream, turn

URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=openai_responder) as server:
        yield server


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def sessions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/sessions", params={"limit": 500})
    listed: list[dict[str, Any]] = response.json()["sessions"]
    return listed


async def test_models_are_the_allowed_ones_default_first(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = ModelConfig(api_base=upstream.url, api_key="sk-test-upstream")
    base = make_settings(upstream.url, tmp_path_factory.mktemp("models"))
    configured = base.model_copy(
        update={
            "models": {**base.models, "openai/second": second},
            "fallback_models": ["openai/second"],
            "aliases": {"quick": MODEL},
        }
    )
    patterned = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("patterns"),
        allowed_models=["openai/scripted", "openai/*", "other/model-?", "[ab]*", "fast"],
    )
    expected = {
        id(configured): [MODEL, "openai/second", "quick"],
        id(patterned): ["openai/scripted", "fast"],  # patterns are accepted, not listed
    }
    for settings in (configured, patterned):
        running = ThreadServer(settings).start()
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
                listed = (await client.get("/v1/models")).json()
                for name in listed["data"] if settings is configured else []:
                    # each listed model answers, as the one it names (an alias resolved)
                    body = (await client.post(URL, json={**turn("hi"), "model": name["id"]})).json()
                    assert body["model"] == ("openai/second" if "second" in name["id"] else MODEL)
        finally:
            running.stop()
        assert listed["object"] == "list"
        assert [m["id"] for m in listed["data"]] == expected[id(settings)]
        for model in listed["data"]:
            assert model == {
                "id": model["id"],
                "object": "model",
                "created": 0,
                "owned_by": "chat-shell",
            }


async def test_a_non_streamed_answer_is_a_chat_completion(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        before = await sessions(client)
        response = await client.post(URL, json=turn("hello there"))
        assert response.status_code == 200, response.text
        body = response.json()
        ChatCompletion.model_validate(body)
        assert body["id"] == response.headers["x-subtask-id"]
        assert "x-session-id" not in response.headers
        assert body["object"] == "chat.completion"
        assert body["model"] == MODEL
        assert body["choices"] == [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "echo: hello there",
                    "refusal": None,
                    "reasoning_content": None,
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ]
        assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        assert body["chat_shell"]["status"] == "completed"
        assert body["chat_shell"]["session_id"] is None
        # Stateless: nothing was stored, and the run is the one named by the id.
        assert await sessions(client) == before
        run = (await client.get(f"/v1/response/{body['id']}")).json()
        assert run["status"] == "completed"
        assert run["content"] == "echo: hello there"


async def test_a_stream_is_data_chunks_then_done(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(URL, json=turn("tokens 5", stream=True))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        chunks, done = read_stream(response)
    assert done
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"] == response.headers["x-subtask-id"]
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == MODEL
        assert "usage" not in chunk  # not asked for
    assert len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_of(chunks) == "t0 t1 t2 t3 t4 "
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 6 + ["stop"]
    assert chunks[-1]["choices"][0]["delta"] == {}


async def test_usage_comes_last_when_asked_for(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = turn("tokens 3", stream=True, stream_options={"include_usage": True})
        chunks, done = read_stream(await client.post(URL, json=body))
    assert done
    *answer, last = chunks
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert all(c["usage"] is None for c in answer)  # as OpenAI: null until the last chunk
    assert answer[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_tool_runs_on_the_server_and_shows_in_extension_fields(
    server: ThreadServer, upstream: ScriptedModelServer
) -> None:
    question = 'call calculator {"expression": "6*7"}'
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        chunks, done = read_stream(await client.post(URL, json=turn(question, stream=True)))
        assert done
        assert content_of(chunks) == "result: 42"
        extensions = [c["chat_shell"] for c in chunks if "chat_shell" in c]
        assert [e["event_type"] for e in extensions] == ["tool_call", "tool_result"]
        call, result = (e["data"] for e in extensions)
        assert call["name"] == "calculator"
        assert call["arguments"] == {"expression": "6*7"}
        assert result["result"] == "42"
        assert result["id"] == call["id"]
        for chunk in chunks:
            if "chat_shell" in chunk:  # a strict client sees an empty delta
                assert chunk["choices"] == [
                    {"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}
                ]
            assert "tool_calls" not in chunk["choices"][0]["delta"]
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        # The model saw the tool's result; the client never has to run anything.
        assert upstream.requests[-1]["messages"][-1]["role"] == "tool"

        body = (await client.post(URL, json=turn(question))).json()
    assert body["choices"][0]["message"]["content"] == "result: 42"
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "stop"
    [ran] = body["chat_shell"]["tool_calls"]
    assert ran["name"] == "calculator"
    assert ran["result"] == "42"
    assert body["usage"]["total_tokens"] > 0  # both model calls of the turn


async def test_thinking_is_reasoning_content(server: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        chunks, _ = read_stream(await client.post(URL, json=turn("think", stream=True)))
        body = (await client.post(URL, json=turn("think"))).json()
    thinking = [c["choices"][0]["delta"]["reasoning_content"] for c in chunks[1:-1][:2]]
    assert thinking == ["let me ", "see"]
    assert content_of(chunks) == "4"
    assert body["choices"][0]["message"]["reasoning_content"] == "let me see"
    assert body["choices"][0]["message"]["content"] == "4"


async def test_an_answer_cut_short_finishes_with_length(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = make_settings(upstream.url, tmp_path_factory.mktemp("short")).model_copy(
        update={"max_iterations": 1}
    )
    running = ThreadServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            body = (await client.post(URL, json=turn("say then call"))).json()
            chunks, done = read_stream(
                await client.post(URL, json=turn("say then call", stream=True))
            )
    finally:
        running.stop()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "Let me see."
    assert body["chat_shell"]["status"] == "incomplete"
    assert "1 model calls" in body["chat_shell"]["reason"]
    assert done
    assert content_of(chunks) == "Let me see."
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_the_messages_are_the_conversation(
    server: ThreadServer, upstream: ScriptedModelServer
) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "six "}, {"type": "text", "text": "times seven?"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "assistant", "content": "42.", "name": "ignored"},
        {"role": "user", "content": "and again"},
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        before = await sessions(client)
        body = {
            "model": MODEL,
            "messages": messages,
            "temperature": 0.5,
            "max_completion_tokens": 77,
        }
        answer = (await client.post(URL, json={**body, "max_tokens": 5})).json()
        assert answer["choices"][0]["message"]["content"] == "echo: and again"
        sent = upstream.requests[-1]
        assert sent["temperature"] == 0.5
        assert sent["max_tokens"] == 77
        assert sent["tools"]  # the server's tools
        assert [(m["role"], m["content"]) for m in sent["messages"]] == [
            ("system", "Be brief."),
            ("user", "six times seven?"),
            ("assistant", None),
            ("tool", "42"),
            ("assistant", "42."),
            ("user", "and again"),
        ]
        assert sent["messages"][2]["tool_calls"][0]["function"]["name"] == "calculator"
        assert sent["messages"][3]["tool_call_id"] == "call_1"
        # tool_choice "none": this turn without tools
        await client.post(URL, json=turn("no tools", tool_choice="none", user="u-1", top_p=1))
        assert "tools" not in upstream.requests[-1] or not upstream.requests[-1]["tools"]
        assert await sessions(client) == before  # stateless: nothing stored


async def test_a_session_id_stores_the_turn(
    server: ThreadServer, upstream: ScriptedModelServer
) -> None:
    system = {"role": "system", "content": "You are terse."}
    first = [system, {"role": "user", "content": "one"}]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(
            URL, json={"model": MODEL, "messages": first}, headers={"X-Session-Id": "oa-1"}
        )
        assert response.headers["x-session-id"] == "oa-1"
        assert response.json()["chat_shell"]["session_id"] == "oa-1"
        # The client sends the whole conversation again, with the session in metadata.
        second = [
            *first,
            {"role": "assistant", "content": "echo: one"},
            {"role": "user", "content": "two"},
        ]
        chunks, done = read_stream(
            await client.post(
                URL,
                json={
                    "model": MODEL,
                    "messages": second,
                    "stream": True,
                    "metadata": {"session_id": "oa-1"},
                },
            )
        )
        assert done
        assert content_of(chunks) == "echo: two"
        sent = upstream.requests[-1]["messages"]
        assert [(m["role"], m["content"]) for m in sent] == [
            ("system", "You are terse."),  # the request's system message, for this turn
            ("user", "one"),  # the session's history, not the request's copy of it
            ("assistant", "echo: one"),
            ("user", "two"),
        ]
        history = (await client.get("/v1/sessions/oa-1/history")).json()["messages"]
        assert [(m["role"], m["content"]) for m in history] == [
            ("user", "one"),
            ("assistant", "echo: one"),
            ("user", "two"),
            ("assistant", "echo: two"),
        ]
        # Both ways at once must agree.
        same = await client.post(
            URL,
            json=turn("three", metadata={"session_id": "oa-1"}),
            headers={"X-Session-Id": "oa-1"},
        )
        assert same.status_code == 200
        refused = await client.post(
            URL,
            json=turn("four", metadata={"session_id": "oa-2"}),
            headers={"X-Session-Id": "oa-1"},
        )
        assert_openai_error(refused, 400, "user_error")
        for bad in ("", "a b", "-x", "x" * 129):
            assert_openai_error(
                await client.post(URL, json=turn("five"), headers={"X-Session-Id": bad}),
                400 if len(bad) <= 128 else 422,
            )
        history = (await client.get("/v1/sessions/oa-1/history")).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == ["one", "two", "three"]
        await client.delete("/v1/sessions/oa-1")
