"""The agent loop through in-process model doubles (design §4)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from chat_shell import (
    AgentRun,
    ChatAgent,
    EventType,
    MemoryStorage,
    Message,
    ModelChoice,
    ModelError,
    ModelRequest,
    ModelSpec,
    RunPlan,
    Tool,
)
from chat_shell.testing import FakeModel, FunctionModel, Recording, Reply, ScriptedToolCall


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


@pytest.fixture
async def storage() -> MemoryStorage:
    return MemoryStorage()


def plan_for(
    model: Any, *tools: Tool, session: str = "s1", text: str = "hi", **options: Any
) -> RunPlan:
    spec = ModelSpec(name=model.model_name, provider="custom", provider_model="m")
    return RunPlan(
        session_id=session,
        new_messages=[Message(role="user", content=text)],
        models=[ModelChoice(spec, model)],
        tools={tool.name: tool for tool in tools},
        **options,
    )


async def run_to_end(storage: MemoryStorage, plan: RunPlan) -> AgentRun:
    return await ChatAgent(storage.history).start(plan).wait()


def types(run: AgentRun) -> list[str]:
    return [event.event_type.value for event in run.events]


async def test_plain_answer_is_streamed_and_stored(storage: MemoryStorage) -> None:
    run = await run_to_end(storage, plan_for(FakeModel(Reply.text("hello there friend"))))
    assert types(run) == ["content", "content", "content", "complete"]
    assert [e.seq for e in run.events] == [0, 1, 2, 3]
    assert {e.run_id for e in run.events} == {run.id}
    complete = run.events[-1].data
    assert complete["status"] == "completed"
    assert complete["content"] == "hello there friend"
    assert complete["usage"]["total_tokens"] == 13
    stored = await storage.history.get_history("s1")
    assert [(m.role, m.content) for m in stored] == [
        ("user", "hi"),
        ("assistant", "hello there friend"),
    ]
    assert stored[1].metadata["status"] == "completed"
    assert stored[1].metadata["usage"]["total_tokens"] == 13
    assert stored[1].metadata["latency_ms"] >= 0


async def test_tool_round_trip_is_stored_and_replayed(storage: MemoryStorage) -> None:
    model = FakeModel(Reply.tool("add", {"a": 123, "b": 456}), Reply.text("579"))
    run = await run_to_end(storage, plan_for(model, Tool(add)))
    assert types(run) == ["tool_call", "tool_result", "content", "complete"]
    assert run.events[0].data == {
        "id": "call_0_add",
        "name": "add",
        "arguments": {"a": 123, "b": 456},
    }
    assert run.events[1].data["result"] == "579"
    assert run.events[1].data["duration_ms"] >= 0
    # the tool result went back to the model
    assert model.requests[1].messages[-1] == {
        "role": "tool",
        "content": "579",
        "tool_call_id": "call_0_add",
        "name": "add",
    }
    stored = await storage.history.get_history("s1")
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1].tool_calls is not None
    assert stored[1].tool_calls[0].arguments == {
        "a": 123,
        "b": 456,
    }
    # a second turn replays the whole first turn to the model
    follow_up = FakeModel("ok")
    await run_to_end(storage, plan_for(follow_up, Tool(add), text="and again?"))
    roles = [m["role"] for m in follow_up.requests[0].messages]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert follow_up.requests[0].tools == [Tool(add).schema()]


async def test_independent_tool_calls_run_concurrently(storage: MemoryStorage) -> None:
    ready = asyncio.Event()

    async def wait_for_other() -> str:
        """Finishes only once the other tool has started."""
        await ready.wait()
        return "waited"

    async def release() -> str:
        """Lets the other tool finish."""
        ready.set()
        return "released"

    model = FakeModel(
        Reply(tool_calls=[ScriptedToolCall("wait_for_other"), ScriptedToolCall("release")]),
        "both ran",
    )
    run = await run_to_end(
        storage, plan_for(model, Tool(wait_for_other), Tool(release), tool_timeout=5)
    )
    results = {e.data["name"]: e.data for e in run.events if e.event_type is EventType.TOOL_RESULT}
    assert results["wait_for_other"]["result"] == "waited"
    assert results["release"]["result"] == "released"
    # results go back in the order of the calls, whatever order they finished in
    assert [m["name"] for m in model.requests[1].messages if m["role"] == "tool"] == [
        "wait_for_other",
        "release",
    ]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (ScriptedToolCall("invented", {}), "unknown tool 'invented'; available tools: add"),
        (ScriptedToolCall("add", '{"a": 1, "b": '), "arguments are not valid JSON"),
        (ScriptedToolCall("add", "[1, 2]"), "arguments must be a JSON object"),
        (ScriptedToolCall("add", {"a": "x", "b": 2}), "invalid arguments for add: a:"),
        (ScriptedToolCall("add", {"a": 1}), "invalid arguments for add: b: Field required"),
        (ScriptedToolCall("add", {"a": 1, "b": 2, "c": 3}), "c: Extra inputs are not permitted"),
    ],
)
async def test_model_mistakes_go_back_as_tool_errors(
    storage: MemoryStorage, call: ScriptedToolCall, expected: str
) -> None:
    model = FakeModel(Reply(tool_calls=[call]), "sorry")
    run = await run_to_end(storage, plan_for(model, Tool(add)))
    assert run.state == "completed"
    result = next(e.data for e in run.events if e.event_type is EventType.TOOL_RESULT)
    assert expected in result["error"]
    assert expected in model.requests[1].messages[-1]["content"]


async def test_tool_that_raises_hangs_or_floods(storage: MemoryStorage) -> None:
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    async def hangs() -> str:
        """Never returns."""
        await asyncio.Event().wait()
        return "never"

    def floods() -> str:
        """Returns 50 MB."""
        return "x" * 50_000_000

    model = FakeModel(
        Reply(
            tool_calls=[
                ScriptedToolCall("broken"),
                ScriptedToolCall("hangs"),
                ScriptedToolCall("floods"),
            ]
        ),
        "carried on",
    )
    run = await run_to_end(
        storage, plan_for(model, Tool(broken), Tool(hangs), Tool(floods), tool_timeout=0.2)
    )
    assert run.state == "completed"
    results = {e.data["name"]: e.data for e in run.events if e.event_type is EventType.TOOL_RESULT}
    assert results["broken"]["error"] == "error: RuntimeError: disk on fire"
    assert results["hangs"]["error"] == "error: hangs timed out after 0.2 s"
    assert len(results["floods"]["result"]) < 21_000
    assert "output truncated" in results["floods"]["result"]
    assert run.content == "carried on"


async def test_approval_is_required_and_fails_closed(storage: MemoryStorage) -> None:
    def delete_everything() -> str:
        """Dangerous."""
        return "deleted"

    tool = Tool(delete_everything, requires_approval=True)
    run = await run_to_end(storage, plan_for(FakeModel(Reply.tool("delete_everything", {})), tool))
    result = next(e.data for e in run.events if e.event_type is EventType.TOOL_RESULT)
    assert "needs approval" in result["error"]

    asked: list[str] = []

    async def approve(name: str, arguments: dict[str, Any]) -> bool:
        asked.append(name)
        return name == "delete_everything"

    run = await run_to_end(
        storage, plan_for(FakeModel(Reply.tool("delete_everything", {})), tool, approve=approve)
    )
    assert (
        next(e.data for e in run.events if e.event_type is EventType.TOOL_RESULT)["result"]
        == "deleted"
    )
    assert asked == ["delete_everything"]


async def test_max_iterations_stops_a_looping_model(storage: MemoryStorage) -> None:
    model = FunctionModel(lambda request: Reply.tool("add", {"a": 1, "b": 1}))
    run = await run_to_end(storage, plan_for(model, Tool(add), max_iterations=3))
    assert run.state == "incomplete"
    assert run.events[-1].data["reason"] == "stopped after 3 model calls"
    assert len(model.requests) == 3
    stored = await storage.history.get_history("s1")
    assert [m.role for m in stored] == ["user"] + ["assistant", "tool"] * 3


async def test_token_budget_stops_the_run(storage: MemoryStorage) -> None:
    model = FunctionModel(lambda request: Reply.tool("add", {"a": 1, "b": 1}))
    run = await run_to_end(storage, plan_for(model, Tool(add), token_budget=20))
    assert run.state == "incomplete"
    assert "token budget" in run.events[-1].data["reason"]
    assert len(model.requests) == 2


async def test_cancel_mid_stream_stores_the_partial_answer(storage: MemoryStorage) -> None:
    model = FakeModel(Reply.tokens(1000, delay=0.01))
    run = ChatAgent(storage.history).start(plan_for(model))
    async for event in run.follow():
        if event.seq == 5:
            assert run.cancel()
    assert run.state == "cancelled"
    assert run.events[-1].data["status"] == "cancelled"
    stored = await storage.history.get_history("s1")
    assert stored[-1].role == "assistant"
    assert stored[-1].metadata["status"] == "cancelled"
    assert stored[-1].content is not None
    assert stored[-1].content.startswith("t0 t1 t2 t3 t4 t5")
    assert not run.cancel()  # already ended


async def test_cancel_stops_running_tools_at_once(storage: MemoryStorage) -> None:
    started = asyncio.Event()
    stopped: list[str] = []

    async def slow() -> str:
        """Takes forever."""
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append("slow")
            raise
        return "late"

    run = ChatAgent(storage.history).start(plan_for(FakeModel(Reply.tool("slow", {})), Tool(slow)))
    await started.wait()
    run.cancel()
    await run.wait()
    assert stopped == ["slow"]
    assert run.state == "cancelled"
    stored = await storage.history.get_history("s1")
    assert [m.role for m in stored] == ["user", "assistant", "tool"]
    assert stored[-1].metadata == {"is_error": True, "status": "cancelled"}


async def test_retries_then_fallback_before_the_first_token(storage: MemoryStorage) -> None:
    flaky = FunctionModel(lambda request: Reply.error(503), model_name="flaky/one")
    steady = FakeModel("from the fallback", model_name="steady/two")
    plan = plan_for(flaky, retries=1)
    plan.models.append(ModelChoice(ModelSpec("steady/two", "custom", "m"), steady))
    run = await run_to_end(storage, plan)
    assert run.state == "completed"
    assert run.content == "from the fallback"
    assert run.model == "steady/two"
    assert len(flaky.requests) == 2  # first try + one retry
    stored = await storage.history.get_history("s1")
    assert stored[-1].metadata["model"] == "steady/two"


async def test_non_retryable_error_goes_straight_to_the_fallback(storage: MemoryStorage) -> None:
    broken = FakeModel(Reply.error(401, "bad key"), model_name="broken/one")
    plan = plan_for(broken, retries=3)
    plan.models.append(ModelChoice(ModelSpec("ok/two", "custom", "m"), FakeModel("fine")))
    run = await run_to_end(storage, plan)
    assert run.content == "fine"
    assert len(broken.requests) == 1


async def test_failure_after_first_token_is_not_retried(storage: MemoryStorage) -> None:
    model = FakeModel(Reply(chunks=["half ", "an ", "answer"], drop_after=2), "never used")
    run = await run_to_end(storage, plan_for(model, retries=3))
    assert run.state == "failed"
    assert types(run) == ["content", "content", "error", "complete"]
    assert run.events[2].data["retryable"] is True
    assert run.events[-1].data["status"] == "failed"
    assert len(model.requests) == 1
    stored = await storage.history.get_history("s1")
    assert stored[-1].content == "half an "
    assert stored[-1].metadata["status"] == "incomplete"


async def test_all_models_failing_gives_an_error_event(storage: MemoryStorage) -> None:
    run = await run_to_end(storage, plan_for(FakeModel(Reply.error(400, "bad request")), retries=0))
    assert run.state == "failed"
    assert run.events[0].event_type is EventType.ERROR
    assert run.events[0].data["code"] == "bad_request"
    assert "bad request" in run.events[0].data["message"]
    assert [m.role for m in await storage.history.get_history("s1")] == ["user"]


async def test_run_timeout(storage: MemoryStorage) -> None:
    run = await run_to_end(
        storage, plan_for(FakeModel(Reply.tokens(100, delay=0.05)), run_timeout=0.2)
    )
    assert run.state == "incomplete"
    assert run.events[-2].data["code"] == "run_timeout"
    stored = await storage.history.get_history("s1")
    assert stored[-1].metadata["status"] == "incomplete"


async def test_thinking_is_streamed_and_kept(storage: MemoryStorage) -> None:
    run = await run_to_end(storage, plan_for(FakeModel(Reply(reasoning=["hmm"], chunks=["yes"]))))
    assert types(run) == ["thinking", "content", "complete"]
    stored = await storage.history.get_history("s1")
    assert stored[-1].metadata["reasoning"] == "hmm"


async def test_store_false_keeps_nothing(storage: MemoryStorage) -> None:
    await run_to_end(storage, plan_for(FakeModel("x"), store=False))
    assert await storage.history.list_sessions() == []


async def test_late_followers_replay_from_any_point(storage: MemoryStorage) -> None:
    run = await run_to_end(storage, plan_for(FakeModel(Reply.tokens(10))))
    assert [e.seq async for e in run.follow(after=7)] == [8, 9, 10]
    assert [e.seq async for e in run.follow()] == list(range(11))


async def test_system_prompt_and_context_are_sent_not_stored(storage: MemoryStorage) -> None:
    model = FakeModel("ok")
    context = [Message(role="user", content="background doc")]
    await run_to_end(storage, plan_for(model, system_prompt="Be brief.", context=context))
    sent = model.requests[0].messages
    assert [m["role"] for m in sent] == ["system", "user", "user"]
    assert sent[0]["content"] == "Be brief."
    assert [m.content for m in await storage.history.get_history("s1")] == ["hi", "ok"]


def test_model_request_has_no_key_in_repr() -> None:
    request = ModelRequest(model="m", messages=[], api_key="sk-secret")
    assert "sk-secret" not in repr(request)
    assert "sk-secret" not in repr(ModelSpec("a/b", "a", "b", api_key="sk-secret"))


async def test_a_compacted_run_replays_the_same_events(storage: MemoryStorage) -> None:
    model = FakeModel(Reply.tool("add", {"a": 1, "b": 2}), Reply.tokens(50))
    run = await run_to_end(storage, plan_for(model, Tool(add)))
    before = [event.model_dump() for event in run.events]
    run.compact()
    assert [event.model_dump() for event in run.events] == before
    assert [event.model_dump() async for event in run.follow(after=40)] == before[41:]
    assert run.events[-1].event_type is EventType.COMPLETE
    assert run.events[1:3] == [run.events[1], run.events[2]]
    assert run.content == before[-1]["data"]["content"]
    with pytest.raises(IndexError):
        run.events[len(before)]


async def test_a_running_run_is_not_compacted(storage: MemoryStorage) -> None:
    run = ChatAgent(storage.history).start(plan_for(FakeModel(Reply.tokens(100, delay=0.01))))
    await asyncio.sleep(0.05)
    run.compact()
    assert isinstance(run.events, list)
    run.cancel()
    await run.wait()


def rate_limited(
    retry_after: float | None, then: str = "after the wait"
) -> tuple[FunctionModel, list[float]]:
    """A model that answers 429 (with ``retry_after``) once, then ``then``; and the monotonic
    time of every call to it."""
    calls: list[float] = []

    def answer(request: ModelRequest) -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ModelError(
                "m: HTTP 429: slow down", retryable=True, status_code=429, retry_after=retry_after
            )
        return then

    return FunctionModel(answer, model_name="limited/one"), calls


async def test_retry_after_is_honoured(storage: MemoryStorage) -> None:
    model, calls = rate_limited(1.2)
    run = await run_to_end(storage, plan_for(model, retries=2))
    assert run.content == "after the wait"
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 1.15  # what the provider asked, not the 0.5 s backoff


async def test_a_retry_after_beyond_the_cap_is_not_waited_for(storage: MemoryStorage) -> None:
    model, _ = rate_limited(3600)
    run = await run_to_end(storage, plan_for(model, retries=2))
    assert run.state == "failed"
    assert len(model.requests) == 1
    error = run.events[0].data
    assert error["code"] == "rate_limited"
    assert (error["retryable"], error["retry_after"], error["provider_status"]) == (True, 3600, 429)
    assert error["model"] == "limited/one"
    # with a fallback, the fallback answers at once
    plan = plan_for(rate_limited(3600)[0], retries=2, session="s2")
    plan.models.append(ModelChoice(ModelSpec("ok/two", "custom", "m"), FakeModel("fallback")))
    assert (await run_to_end(storage, plan)).content == "fallback"


@pytest.mark.parametrize(
    "error",
    [
        ModelError("m: HTTP 429", retryable=True, status_code=429, retry_after=5),
        ModelError("m: HTTP 503", retryable=True, status_code=503),  # backoff 0.5 s
    ],
)
async def test_a_retry_that_cannot_fit_in_the_run_is_not_attempted(
    storage: MemoryStorage, error: ModelError
) -> None:
    """The run has 1.2 s: the provider's error comes back, not a run timeout after a wait."""

    def answer(request: ModelRequest) -> str:
        raise error

    model = FunctionModel(answer)
    run = await run_to_end(storage, plan_for(model, retries=3, run_timeout=1.2))
    assert run.state == "failed"
    assert len(model.requests) == 1
    assert run.events[0].data["code"] == error.code
    assert run.events[0].data["code"] in ("rate_limited", "unavailable")


async def test_an_empty_answer_goes_to_the_fallback(storage: MemoryStorage) -> None:
    empty = FakeModel(Recording.sse(), model_name="empty/one")
    plan = plan_for(empty, retries=2)
    plan.models.append(ModelChoice(ModelSpec("ok/two", "custom", "m"), FakeModel("an answer")))
    run = await run_to_end(storage, plan)
    assert (run.state, run.content, run.model) == ("completed", "an answer", "ok/two")
    assert len(empty.requests) == 1  # not retried: the same model would answer the same
    stored = await storage.history.get_history("s1")
    assert [(m.role, m.content) for m in stored] == [("user", "hi"), ("assistant", "an answer")]


async def test_a_failed_attempt_is_logged_with_run_model_and_cause(
    storage: MemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    model, _ = rate_limited(0.01)
    with caplog.at_level(logging.WARNING, logger="chat_shell"):
        run = await run_to_end(storage, plan_for(model, retries=1))
    assert run.state == "completed"
    assert [r.getMessage() for r in caplog.records] == [
        f"run {run.id}: model limited/one failed before answering (rate_limited, HTTP 429, "
        "retryable): m: HTTP 429: slow down; retrying in 0.01 s"
    ]
