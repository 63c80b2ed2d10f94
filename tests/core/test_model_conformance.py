"""Both model backends, the same scripted upstream streams, the same parts (design §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chat_shell import (
    FinishPart,
    ModelError,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallPart,
    UsagePart,
)
from chat_shell._models.backend import ModelBackend, ModelPart, parse_retry_after
from chat_shell._models.litellm_backend import LiteLLMBackend
from chat_shell._models.openai_backend import OpenAIBackend
from chat_shell.testing import Recording, Reply, ScriptedModelServer, ScriptedToolCall
from model_support import sse_stream

UPSTREAMS = Path(__file__).parent.parent / "fixtures" / "upstreams"

PORTAL = b"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Sign in to Example Corp</title></head><body><form>...</form></body></html>"""
BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate arithmetic.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk`` as servers stream it."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def tool_delta(**fields: Any) -> dict[str, Any]:
    return chunk({"tool_calls": [fields]})


def calls_of(parts: list[ModelPart]) -> list[tuple[str, str, str]]:
    return [(p.id, p.name, p.arguments) for p in parts if isinstance(p, ToolCallPart)]


class BackendConformance:
    """Subclassed once per backend; ``model`` is the name the backend is given."""

    model: str
    prefix: str  # before a bare OpenAI model name

    @pytest.fixture
    def server(self) -> Iterator[ScriptedModelServer]:
        with ScriptedModelServer() as server:
            yield server

    async def collect(
        self,
        backend: ModelBackend,
        server: ScriptedModelServer,
        *,
        tools: bool = False,
        **options: Any,
    ) -> list[ModelPart]:
        request = ModelRequest(
            model=options.pop("model", self.model),
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS if tools else None,
            api_base=server.url,
            api_key="sk-test-not-a-real-key-123456",
            timeout=10,
            **options,
        )
        return [part async for part in backend.stream(request)]

    async def test_text_stream(self, backend: ModelBackend, server: ScriptedModelServer) -> None:
        server.add(Reply.tokens(20))
        parts = await self.collect(backend, server)
        assert [p.text for p in parts if isinstance(p, TextDelta)] == [f"t{i} " for i in range(20)]
        assert parts[-1] == UsagePart(
            {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        )

    async def test_reasoning_comes_as_thinking(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Reply(reasoning=["let me ", "think"], chunks=["42"]))
        parts = await self.collect(backend, server)
        assert [p.text for p in parts if isinstance(p, ReasoningDelta)] == ["let me ", "think"]
        assert [p.text for p in parts if isinstance(p, TextDelta)] == ["42"]

    async def test_streamed_tool_call_deltas_are_assembled(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Reply.tool("calculator", {"expression": "123 * 456 + (7 - 2)"}))
        parts = await self.collect(backend, server, tools=True)
        calls = [p for p in parts if isinstance(p, ToolCallPart)]
        assert calls == [
            ToolCallPart(
                id="call_0_calculator",
                name="calculator",
                arguments='{"expression": "123 * 456 + (7 - 2)"}',
            )
        ]
        assert server.requests[0]["tools"][0]["function"]["name"] == "calculator"

    async def test_several_tool_calls_keep_their_order(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(
            Reply(
                chunks=["Checking."],
                tool_calls=[
                    ScriptedToolCall("calculator", {"expression": "1+1"}),
                    ScriptedToolCall("current_time", {"timezone": "Europe/Paris"}),
                    ScriptedToolCall("calculator", {"expression": "2**10"}),
                ],
            )
        )
        parts = await self.collect(backend, server, tools=True)
        calls = [p for p in parts if isinstance(p, ToolCallPart)]
        assert [(c.id, c.name) for c in calls] == [
            ("call_0_calculator", "calculator"),
            ("call_1_current_time", "current_time"),
            ("call_2_calculator", "calculator"),
        ]
        assert calls[1].arguments == '{"timezone": "Europe/Paris"}'

    async def test_llama_cpp_recorded_tool_call_stream(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        """llama-cpp-python repeats the whole name in every delta: it is one call of ``calc``."""
        recording = UPSTREAMS / "llama-cpp-python-0.3.36-tool-call-stream.sse"
        server.add(Recording.from_file(recording))
        parts = await self.collect(backend, server, tools=True)
        call_id = "call__0_calc_cmpl-27ca677a-de53-4f49-8ae3-fcf693584de4"
        assert calls_of(parts) == [(call_id, "calc", '{ "expression": "123*456, math.combinat,"}')]
        assert FinishPart("tool_calls") in parts

    @pytest.mark.parametrize(
        ("events", "expected"),
        [
            pytest.param(
                [  # no index; the second call has its own id
                    tool_delta(
                        id="a1", type="function", function={"name": "calc", "arguments": ""}
                    ),
                    tool_delta(function={"arguments": '{"x":'}),
                    tool_delta(function={"arguments": " 1}"}),
                    tool_delta(
                        id="a2", type="function", function={"name": "clock", "arguments": "{}"}
                    ),
                ],
                [("a1", "calc", '{"x": 1}'), ("a2", "clock", "{}")],
                id="no-index-with-ids",
            ),
            pytest.param(
                [  # Gemini: two whole calls in one delta, no index, empty ids
                    chunk(
                        {
                            "role": "assistant",
                            "tool_calls": [
                                {
                                    "id": "",
                                    "type": "function",
                                    "function": {"name": "calc", "arguments": '{"x":1}'},
                                },
                                {
                                    "id": "",
                                    "type": "function",
                                    "function": {"name": "calc", "arguments": '{"x":2}'},
                                },
                            ],
                        }
                    )
                ],
                [("call_0", "calc", '{"x":1}'), ("call_1", "calc", '{"x":2}')],
                id="two-calls-in-one-delta",
            ),
            pytest.param(
                [  # every call numbered 0, told apart by their ids
                    tool_delta(index=0, id="c1", function={"name": "calc", "arguments": '{"x":1}'}),
                    tool_delta(index=0, id="c2", function={"name": "clock", "arguments": "{}"}),
                ],
                [("c1", "calc", '{"x":1}'), ("c2", "clock", "{}")],
                id="same-index-new-id",
            ),
            pytest.param(
                [  # OpenAI: index on every delta, id and name on the first only
                    tool_delta(index=0, id="o1", function={"name": "calc", "arguments": ""}),
                    tool_delta(index=1, id="o2", function={"name": "clock", "arguments": ""}),
                    tool_delta(index=0, function={"arguments": '{"x":'}),
                    tool_delta(index=1, function={"arguments": "{}"}),
                    tool_delta(index=0, function={"arguments": "3}"}),
                ],
                [("o1", "calc", '{"x":3}'), ("o2", "clock", "{}")],
                id="interleaved-indexes",
            ),
        ],
    )
    async def test_tool_call_deltas_of_every_shape(
        self,
        backend: ModelBackend,
        server: ScriptedModelServer,
        events: list[dict[str, Any]],
        expected: list[tuple[str, str, str]],
    ) -> None:
        server.add(Recording.sse(*events, chunk({}, "stop")))
        parts = await self.collect(backend, server, tools=True)
        assert calls_of(parts) == expected
        # an answer with tool calls ended by "stop" (Gemini) still says tool_calls
        assert [p for p in parts if isinstance(p, FinishPart)] == [FinishPart("tool_calls")]

    @pytest.mark.parametrize("reason", ["length", "content_filter", "stop"])
    async def test_the_finish_reason_is_reported(
        self, backend: ModelBackend, server: ScriptedModelServer, reason: str
    ) -> None:
        server.add(
            Recording.sse(chunk({"role": "assistant", "content": "Once upon"}), chunk({}, reason))
        )
        parts = await self.collect(backend, server)
        assert [p for p in parts if not isinstance(p, UsagePart)] == [
            TextDelta("Once upon"),
            FinishPart(reason),
        ]

    async def test_no_usage_when_the_server_counts_none(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        """Usage is what the provider counted; no estimate is made up when it sends none."""
        server.add(
            Recording.sse(chunk({"role": "assistant", "content": "hello"}), chunk({}, "stop"))
        )
        parts = await self.collect(backend, server)
        assert parts == [TextDelta("hello"), FinishPart("stop")]

    async def test_an_empty_stream_gives_no_parts_but_its_end(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Recording.sse(chunk({"role": "assistant", "content": ""}), chunk({}, "stop")))
        parts = await self.collect(backend, server)
        assert parts == [FinishPart("stop")]

    @pytest.mark.parametrize(
        ("error", "retryable", "code"),
        [
            (
                {"message": "Loading model", "code": 503, "type": "unavailable_error"},
                True,
                "unavailable",
            ),
            ({"message": "busy", "code": "429"}, True, "rate_limited"),
            ({"message": "overloaded", "type": "overloaded_error"}, True, "unavailable"),
            ({"message": "oops", "type": "server_error"}, True, "unavailable"),
            (
                {"message": "bad tool schema", "code": 400, "type": "BadRequestError"},
                False,
                "bad_request",
            ),
            ({"message": "no"}, False, "model_error"),
        ],
    )
    async def test_an_error_inside_the_stream_is_judged_as_a_status(
        self,
        backend: ModelBackend,
        server: ScriptedModelServer,
        error: dict[str, Any],
        retryable: bool,
        code: str,
    ) -> None:
        server.add(
            Recording.sse(chunk({"role": "assistant", "content": ""}), {"error": error}, done=False)
        )
        with pytest.raises(ModelError) as caught:
            await self.collect(backend, server)
        assert (caught.value.retryable, caught.value.code) == (retryable, code)
        assert error["message"] in caught.value.message

    @pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"])
    async def test_reasoning_models_get_max_completion_tokens_and_no_temperature(
        self, backend: ModelBackend, server: ScriptedModelServer, model: str
    ) -> None:
        server.add(Reply.text("ok"))
        await self.collect(
            backend, server, model=self.prefix + model, max_tokens=50, temperature=0.2
        )
        body = server.requests[0]
        assert body["max_completion_tokens"] == 50
        assert "max_tokens" not in body
        assert "temperature" not in body

    @pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "gpt-5-chat-latest"])
    async def test_other_models_get_max_tokens_and_temperature(
        self, backend: ModelBackend, server: ScriptedModelServer, model: str
    ) -> None:
        server.add(Reply.text("ok"))
        await self.collect(
            backend, server, model=self.prefix + model, max_tokens=50, temperature=0.2
        )
        body = server.requests[0]
        assert (body["max_tokens"], body["temperature"]) == (50, 0.2)

    @pytest.mark.parametrize(
        ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (401, False)]
    )
    async def test_http_errors_are_typed(
        self, backend: ModelBackend, server: ScriptedModelServer, status: int, retryable: bool
    ) -> None:
        server.add(Reply.error(status, "upstream says no"))
        with pytest.raises(ModelError) as caught:
            await self.collect(backend, server)
        assert caught.value.retryable is retryable
        assert "sk-test-not-a-real-key-123456" not in str(caught.value)

    async def test_mid_stream_drop_is_a_retryable_error(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Reply(chunks=["a", "b", "c", "d"], drop_after=2))
        seen: list[ModelPart] = []
        request = ModelRequest(
            model=self.model,
            messages=[{"role": "user", "content": "hi"}],
            api_base=server.url,
            api_key="sk-test",
            timeout=10,
        )

        async def consume() -> None:
            async for part in backend.stream(request):
                seen.append(part)

        with pytest.raises(ModelError) as caught:
            await consume()
        assert caught.value.retryable
        assert [p.text for p in seen if isinstance(p, TextDelta)] == ["a", "b"]

    @pytest.mark.parametrize(
        "style",
        [
            {"line_end": b"\r\n"},
            {"line_end": b"\r"},
            {"split_data": True},
            {"comments": True, "event": b"message"},
        ],
        ids=["CRLF", "CR", "data over several lines", "comments and fields"],
    )
    async def test_the_whole_sse_grammar(
        self, backend: ModelBackend, server: ScriptedModelServer, style: dict[str, Any]
    ) -> None:
        server.add(Reply.raw(sse_stream(Reply.tokens(5), **style), piece_size=7))
        parts = await self.collect(backend, server)
        assert [p.text for p in parts if isinstance(p, TextDelta)] == [f"t{i} " for i in range(5)]
        assert parts[-1] == UsagePart(
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        )

    async def test_an_html_error_page_is_a_retryable_model_error(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Reply.raw(BAD_GATEWAY, "text/html", status=502))
        with pytest.raises(ModelError) as caught:
            await self.collect(backend, server)
        assert caught.value.retryable
        assert caught.value.status_code == 502

    @pytest.mark.parametrize("status", [307, 308])
    async def test_a_redirect_that_keeps_the_post_is_followed(
        self, backend: ModelBackend, server: ScriptedModelServer, status: int
    ) -> None:
        server.add(Reply.redirect("/moved/v1/chat/completions", status), Reply.tokens(3))
        parts = await self.collect(backend, server)
        assert [p.text for p in parts if isinstance(p, TextDelta)] == ["t0 ", "t1 ", "t2 "]
        assert server.paths == [
            ("POST", "/v1/chat/completions"),
            ("POST", "/moved/v1/chat/completions"),
        ]
        assert server.requests[1] == server.requests[0]

    @pytest.mark.parametrize("status", [301, 302, 303])
    async def test_a_redirect_that_turns_the_post_into_a_get_ends_in_a_final_error(
        self, backend: ModelBackend, server: ScriptedModelServer, status: int
    ) -> None:
        """As the official SDK (httpx) does, and browsers: the server then answers 405."""
        server.add(Reply.redirect("/moved/v1/chat/completions", status))
        with pytest.raises(ModelError) as caught:
            await self.collect(backend, server)
        assert server.paths[1] == ("GET", "/moved/v1/chat/completions")
        assert caught.value.retryable is False
        assert caught.value.status_code == 405

    @pytest.mark.parametrize("encoding", ["gzip", "deflate"])
    async def test_a_compressed_stream(
        self, backend: ModelBackend, server: ScriptedModelServer, encoding: str
    ) -> None:
        server.add(Reply.tokens(20, content_encoding=encoding))
        parts = await self.collect(backend, server)
        assert [p.text for p in parts if isinstance(p, TextDelta)] == [f"t{i} " for i in range(20)]

    async def test_unreachable_endpoint(self, backend: ModelBackend) -> None:
        request = ModelRequest(
            model=self.model,
            messages=[{"role": "user", "content": "hi"}],
            api_base="http://127.0.0.1:9/v1",
            api_key="sk-test",
            timeout=5,
        )
        with pytest.raises(ModelError) as caught:
            async for _ in backend.stream(request):
                pass
        assert caught.value.retryable


class TestOpenAIBackend(BackendConformance):
    model = "scripted-model"
    prefix = ""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ModelBackend]:
        backend = OpenAIBackend()
        yield backend
        await backend.aclose()

    async def test_a_byte_order_mark_may_open_the_stream(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        """(litellm drops the event the mark is glued to.)"""
        server.add(Reply.raw(sse_stream(Reply.tokens(2), bom=True, role_chunk=False)))
        parts = await self.collect(backend, server)
        assert [p.text for p in parts if isinstance(p, TextDelta)] == ["t0 ", "t1 "]

    # Answers that are not an SSE stream. litellm (1.110) gives an empty answer for the first
    # three instead of an error or the completion's text, and its message of an HTML error
    # page is only "Error code: 502": these hold for the openai/ client only.

    async def test_a_whole_completion_instead_of_a_stream(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        """A server that ignores ``stream: true``: the same parts from its one JSON answer."""
        server.add(
            Reply(
                chunks=["Let me ", "compute."],
                tool_calls=[ScriptedToolCall("calculator", {"expression": "6*7"}, id="call_a")],
                not_streamed=True,
            )
        )
        parts = await self.collect(backend, server, tools=True)
        assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "Let me compute."
        assert [p for p in parts if isinstance(p, ToolCallPart)] == [
            ToolCallPart(id="call_a", name="calculator", arguments='{"expression": "6*7"}')
        ]
        assert parts[-1] == UsagePart(
            {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
        )

    @pytest.mark.parametrize(
        ("status", "content_type", "body", "says", "retryable"),
        [
            (200, "application/json", b'{"error": {"message": "no such model"}}', "no such", False),
            (200, "text/html", PORTAL, "Sign in to Example Corp", False),
            (502, "text/html", BAD_GATEWAY, "Bad Gateway", True),
        ],
        ids=["JSON error with 200", "HTML page with 200", "HTML error page"],
    )
    async def test_an_answer_that_is_no_completion_is_a_clear_error(
        self,
        backend: ModelBackend,
        server: ScriptedModelServer,
        status: int,
        content_type: str,
        body: bytes,
        says: str,
        retryable: bool,
    ) -> None:
        server.add(Reply.raw(body, content_type, status=status))
        with pytest.raises(ModelError, match=says) as caught:
            await self.collect(backend, server)
        assert caught.value.retryable is retryable
        assert caught.value.status_code == status
        assert f"HTTP {status} ({content_type})" in str(caught.value)
        assert "ended before" not in str(caught.value)

    async def test_stream_error_event(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Reply(chunks=["partial"], stream_error="overloaded"))
        with pytest.raises(ModelError, match="overloaded"):
            await self.collect(backend, server)

    async def test_sends_key_as_bearer_and_asks_for_usage(
        self, backend: ModelBackend, server: ScriptedModelServer
    ) -> None:
        server.add(Reply.text("ok"))
        await self.collect(backend, server)
        assert server.headers[0]["Authorization"] == "Bearer sk-test-not-a-real-key-123456"
        assert server.requests[0]["stream_options"] == {"include_usage": True}
        assert server.requests[0]["model"] == "scripted-model"


@pytest.mark.litellm
class TestLiteLLMBackend(BackendConformance):
    model = "openai/scripted-model"
    prefix = "openai/"

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ModelBackend]:
        backend = LiteLLMBackend()
        yield backend
        await backend.aclose()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 120.0),  # an HTTP date, two minutes ahead
        ("Wed, 21 Oct 2015 07:20:00 GMT", 0.0),  # already past
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 26, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == seconds
