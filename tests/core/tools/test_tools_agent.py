"""The agent end-to-end with tools: a scripted model, real tool calls, and every way they fail."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from chat_shell import ChatOutput, DirectChatInterface, InterfaceConfig, Tool, tool
from chat_shell.testing import FakeModel, FunctionModel, Reply, ScriptedToolCall
from chat_shell.tools import calculator


async def _run(
    model: FunctionModel,
    tools: list[Any],
    *,
    approve: Any = None,
    tool_timeout: float | None = None,
) -> tuple[ChatOutput, list[Any]]:
    config = InterfaceConfig(
        model=model,
        tools=tools,
        approve=approve,
        tool_timeout=tool_timeout,
        use_config_file=False,
        use_environment=False,
    )
    async with DirectChatInterface(config) as chat:
        stream = chat.stream_chat("go")
        events = [event async for event in stream.events()]
        return await stream.output(), events


def _results(events: list[Any]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.event_type == "tool_result"]


def _tool_messages(model: FakeModel) -> list[dict[str, Any]]:
    last = model.requests[-1]
    return [m for m in last.messages if m.get("role") == "tool"]


async def test_scripted_model_uses_the_calculator_and_answers_with_the_result() -> None:
    def answer(request: Any) -> Reply:
        tool_messages = [m for m in request.messages if m.get("role") == "tool"]
        if not tool_messages:
            return Reply.tool("calculator", {"expression": "123 * 456"})
        return Reply.text(f"123 * 456 = {tool_messages[-1]['content']}")

    model = FunctionModel(answer)
    output, events = await _run(model, [calculator])
    assert output.status == "completed"
    assert output.content == "123 * 456 = 56088"
    assert _results(events)[0]["result"] == "56088"
    calls = [e.data for e in events if e.event_type == "tool_call"]
    assert calls[0]["name"] == "calculator"
    assert calls[0]["arguments"] == {"expression": "123 * 456"}
    schemas = model.requests[0].tools or []
    assert schemas[0]["function"]["name"] == "calculator"


async def test_tools_by_name_resolve_through_the_registry() -> None:
    model = FakeModel(Reply.tool("calculator", {"expression": "2**10"}), "ok")
    output, events = await _run(model, ["calculator", "current_time"])
    assert output.status == "completed"
    assert _results(events)[0]["result"] == "1024"
    names = {s["function"]["name"] for s in model.requests[0].tools or []}
    assert names == {"calculator", "current_time"}


async def test_unknown_tool_name_becomes_a_tool_error_and_the_run_continues() -> None:
    model = FakeModel(Reply.tool("rm_rf", {"path": "/"}), "sorry")
    output, events = await _run(model, [calculator])
    assert output.status == "completed"
    assert output.content == "sorry"
    error = _results(events)[0]["error"]
    assert "unknown tool 'rm_rf'" in error
    assert "calculator" in error
    assert _tool_messages(model)[0]["content"] == error


async def test_arguments_that_fail_the_schema_go_back_to_the_model() -> None:
    model = FakeModel(
        Reply(
            tool_calls=[
                ScriptedToolCall("calculator", {"expression": ["not", "a", "string"]}),
                ScriptedToolCall("calculator", {"expr": "1+1"}),
                ScriptedToolCall("calculator", "{not json"),
            ]
        ),
        "fixed",
    )
    output, events = await _run(model, [calculator])
    assert output.status == "completed"
    errors = [r["error"] for r in _results(events)]
    assert len(errors) == 3
    assert all(e.startswith("error: ") for e in errors)
    assert sum("invalid arguments for calculator" in e for e in errors) == 2
    assert any("not valid JSON" in e for e in errors)
    assert len(_tool_messages(model)) == 3


async def test_a_tool_that_raises_becomes_a_tool_error() -> None:
    @tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(f"boom: {reason}")

    model = FakeModel(Reply.tool("explode", {"reason": "testing"}), "recovered")
    output, events = await _run(model, [explode])
    assert output.status == "completed"
    assert output.content == "recovered"
    assert _results(events)[0]["error"] == "error: RuntimeError: boom: testing"


async def test_hanging_tools_time_out_and_the_run_continues() -> None:
    release = threading.Event()

    @tool(timeout=0.2)
    async def hang_async() -> str:
        """Never returns."""
        await asyncio.sleep(3600)
        return "unreachable"

    @tool(timeout=0.2)
    def hang_sync() -> str:
        """Blocks its thread."""
        release.wait(30)
        return "unreachable"

    model = FakeModel(
        Reply(tool_calls=[ScriptedToolCall("hang_async"), ScriptedToolCall("hang_sync")]),
        "gave up",
    )
    try:
        output, events = await _run(model, [hang_async, hang_sync])
    finally:
        release.set()
    assert output.status == "completed"
    assert output.content == "gave up"
    errors = sorted(r["error"] for r in _results(events))
    assert errors == [
        "error: hang_async timed out after 0.2 s",
        "error: hang_sync timed out after 0.2 s",
    ]


async def test_a_50_mb_result_is_truncated_before_the_model_sees_it() -> None:
    @tool(max_output_chars=1_000)
    def flood() -> str:
        """Returns far too much."""
        return "x" * 50_000_000

    model = FakeModel(Reply.tool("flood", {}), "read it")
    output, events = await _run(model, [flood])
    assert output.status == "completed"
    result = _results(events)[0]["result"]
    assert len(result) < 1_200
    assert result.endswith("[output truncated: 49999000 more characters]")
    assert _tool_messages(model)[0]["content"] == result


async def test_the_default_cap_applies_to_plain_functions_too() -> None:
    def big() -> list[int]:
        """A long list."""
        return list(range(1_000_000))

    model = FakeModel(Reply.tool("big", {}), "ok")
    _, events = await _run(model, [big])
    result = _results(events)[0]["result"]
    assert len(result) < 20_100
    assert "[output truncated:" in result


class TestApproval:
    @staticmethod
    def _delete() -> Tool:
        @tool(requires_approval=True)
        def delete_everything(confirm: bool = True) -> str:
            """Dangerous."""
            return "deleted"

        return delete_everything

    async def test_fails_closed_without_a_callback(self) -> None:
        model = FakeModel(Reply.tool("delete_everything", {}), "ok")
        _, events = await _run(model, [self._delete()])
        assert "needs approval" in _results(events)[0]["error"]

    async def test_a_declined_call_does_not_run(self) -> None:
        asked: list[tuple[str, dict[str, Any]]] = []

        async def deny(name: str, arguments: dict[str, Any]) -> bool:
            asked.append((name, arguments))
            return False

        model = FakeModel(Reply.tool("delete_everything", {"confirm": True}), "ok")
        _, events = await _run(model, [self._delete()], approve=deny)
        assert asked == [("delete_everything", {"confirm": True})]
        assert "declined" in _results(events)[0]["error"]

    async def test_an_approved_call_runs(self) -> None:
        async def allow(name: str, arguments: dict[str, Any]) -> bool:
            return True

        model = FakeModel(Reply.tool("delete_everything", {}), "ok")
        _, events = await _run(model, [self._delete()], approve=allow)
        assert _results(events)[0]["result"] == "deleted"

    async def test_the_callback_is_announced_by_an_approval_required_event(self) -> None:
        order: list[str] = []

        async def allow(name: str, arguments: dict[str, Any]) -> bool:
            order.append("asked")
            return True

        model = FakeModel(Reply.tool("delete_everything", {"confirm": True}), "ok")
        _, events = await _run(model, [self._delete()], approve=allow)
        kinds = [e.event_type for e in events]
        asked = events[kinds.index("approval_required")]
        call = events[kinds.index("tool_call")]
        assert kinds.index("tool_call") < kinds.index("approval_required")
        assert kinds.index("approval_required") < kinds.index("tool_result")
        assert asked.data == {
            "id": call.data["id"],
            "name": "delete_everything",
            "arguments": {"confirm": True},
            "expires_at": None,
        }
        assert order == ["asked"]

    async def test_no_event_when_the_call_is_refused_without_asking(self) -> None:
        model = FakeModel(Reply.tool("delete_everything", {}), "ok")
        _, events = await _run(model, [self._delete()])
        assert "approval_required" not in [e.event_type for e in events]

    async def test_asking_over_the_event_stream_times_out_as_not_approved(self) -> None:
        config = InterfaceConfig(
            model=FakeModel(Reply.tool("delete_everything", {}), "ok"),
            tools=[self._delete()],
            approval_timeout=0.05,
            use_config_file=False,
            use_environment=False,
        )
        async with DirectChatInterface(config) as chat:
            stream = chat.stream_chat("go")
            events = [event async for event in stream.events()]
        asked = [e for e in events if e.event_type == "approval_required"]
        assert len(asked) == 1
        assert asked[0].data["expires_at"] > asked[0].timestamp
        assert _results(events)[0]["error"] == (
            "error: delete_everything was not approved: no answer within 0.05 s"
        )

    async def test_asking_over_the_event_stream_takes_the_stored_answer(self) -> None:
        config = InterfaceConfig(
            model=FakeModel(Reply.tool("delete_everything", {}), "ok"),
            tools=[self._delete()],
            approval_timeout=30,
            use_config_file=False,
            use_environment=False,
        )
        async with DirectChatInterface(config) as chat:
            stream = chat.stream_chat("go")
            events = []
            async for event in stream.events():
                events.append(event)
                if event.event_type == "approval_required":
                    store = chat.runs.store
                    assert await store.answer_approval(event.run_id, event.data["id"], True)
        assert _results(events)[0]["result"] == "deleted"
