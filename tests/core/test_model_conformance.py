"""Both model backends, the same scripted upstream streams, the same parts (design §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from chat_shell import ModelError, ModelRequest, ReasoningDelta, TextDelta, ToolCallPart, UsagePart
from chat_shell._litellm_backend import LiteLLMBackend
from chat_shell._model_backend import ModelBackend, ModelPart
from chat_shell._openai_backend import OpenAIBackend
from chat_shell.testing import Reply, ScriptedModelServer, ScriptedToolCall

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
