"""Both model backends, the same scripted upstream streams, the same parts (design §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from chat_shell import ModelError, ModelRequest, ReasoningDelta, TextDelta, ToolCallPart, UsagePart
from chat_shell._litellm_backend import LiteLLMBackend
from chat_shell._model_backend import ModelBackend, ModelPart
from chat_shell._openai_backend import OpenAIBackend
from chat_shell.testing import Reply, ScriptedModelServer, ScriptedToolCall
from model_support import sse_stream

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


class BackendConformance:
    """Subclassed once per backend; ``model`` is the name the backend is given."""

    model: str

    @pytest.fixture
    def server(self) -> AsyncIterator[ScriptedModelServer]:
        with ScriptedModelServer() as server:
            yield server

    async def collect(
        self, backend: ModelBackend, server: ScriptedModelServer, *, tools: bool = False
    ) -> list[ModelPart]:
        request = ModelRequest(
            model=self.model,
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS if tools else None,
            api_base=server.url,
            api_key="sk-test-not-a-real-key-123456",
            timeout=10,
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

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ModelBackend]:
        backend = LiteLLMBackend()
        yield backend
        await backend.aclose()
