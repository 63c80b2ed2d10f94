"""Fitting requests into a model's context window (chat_shell/_agent/context.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chat_shell import ChatInput, DirectChatInterface, InterfaceConfig, Message, ToolCall
from chat_shell._agent.context import (
    SUMMARY_KEY,
    Budget,
    RequestContext,
    budget_for,
    estimate_tokens,
)
from chat_shell._config import ModelConfig, load_settings
from chat_shell._models.model_table import model_facts
from chat_shell.testing import Reply, ScriptedModelServer


def words(tag: str, count: int = 80) -> str:
    """About ``count`` tokens of text starting with ``tag``."""
    return tag + " " + "word " * (count * 4 // 5)


def turn(tag: str, size: int = 80) -> list[Message]:
    return [
        Message(role="user", content=words(f"{tag}-question", size)),
        Message(role="assistant", content=words(f"{tag}-answer", size)),
    ]


def tool_turn(tag: str, size: int = 80) -> list[Message]:
    call = ToolCall(id=f"call-{tag}", name="lookup", arguments={"q": tag})
    return [
        Message(role="user", content=words(f"{tag}-question", size)),
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(role="tool", content=words(f"{tag}-result", size), tool_call_id=call.id),
        Message(role="assistant", content=words(f"{tag}-answer", size)),
    ]


def contents(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m.get("content") or m.get("tool_calls")) for m in messages]


# -- the estimate --------------------------------------------------------------------------------


def test_estimate_counts_letters_as_quarters_and_punctuation_more() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 400) == 101
    assert estimate_tokens("1" * 400) > estimate_tokens("a" * 400) * 2
    assert estimate_tokens("д" * 400) > estimate_tokens("a" * 400)  # two bytes a letter
    assert estimate_tokens("字" * 400) > estimate_tokens("д" * 400)  # three bytes


# -- the budget ----------------------------------------------------------------------------------


def test_the_window_comes_from_config_before_the_table() -> None:
    facts = model_facts("openai/gpt-4o-mini")
    assert facts is not None
    assert facts.max_input_tokens == 128_000
    assert budget_for("openai/gpt-4o-mini", None, None) == Budget(window=128_000, answer=4096)
    assert budget_for("openai/gpt-4o-mini", 8000, 500) == Budget(window=8000, answer=500)
    assert budget_for("openai/my-local-model", None, None) is None
    assert budget_for("openai/my-local-model", 1000, None) == Budget(window=1000, answer=250)


def test_the_answer_never_takes_more_than_half_the_window() -> None:
    budget = budget_for("openai/x", 1000, 5000)
    assert budget is not None
    assert budget.answer == 500
    assert budget.input_tokens >= 250


def test_bare_names_are_found_under_their_provider_only() -> None:
    assert model_facts("anthropic/claude-sonnet-4-5") is not None
    assert model_facts("gemini/gemini-2.5-flash") is not None
    assert model_facts("anthropic/gpt-4o-mini") is None  # a bare name of another provider


# -- what a request carries ----------------------------------------------------------------------


def test_everything_is_sent_when_it_fits_or_the_window_is_unknown() -> None:
    history = turn("one") + turn("two")
    context = RequestContext(history, [Message(role="user", content="three")], system_prompt="S")
    for budget in (None, Budget(window=100_000, answer=100)):
        fitted = context.fit(budget)
        assert len(fitted.messages) == 6
        assert fitted.dropped == 0


def test_the_oldest_turns_go_first_and_the_system_prompt_and_newest_message_stay() -> None:
    history = [m for tag in ("t1", "t2", "t3", "t4", "t5") for m in turn(tag)]
    new = [Message(role="user", content=words("newest"))]
    context = RequestContext(history, new, system_prompt="You are terse.")
    fitted = context.fit(Budget(window=1000, answer=200))
    sent = contents(fitted.messages)
    assert sent[0] == "You are terse."
    assert sent[-1].startswith("newest")
    assert fitted.dropped == len(history) + 2 - len(sent)
    assert fitted.dropped > 0
    # whole turns, newest first kept: the sent history is a suffix of the stored one
    kept = sent[1:-1]
    assert kept == [m.content for m in history[len(history) - len(kept) :]]
    assert kept[0].startswith("t")
    assert "question" in kept[0]
    assert fitted.tokens <= Budget(window=1000, answer=200).input_tokens


def test_a_tool_call_is_never_sent_without_its_result() -> None:
    history = [m for tag in ("t1", "t2", "t3", "t4") for m in tool_turn(tag)]
    context = RequestContext(history, [Message(role="user", content="now")])
    for window in (500, 800, 1200, 1600):
        fitted = context.fit(Budget(window=window, answer=100))
        roles = [m["role"] for m in fitted.messages]
        for index, message in enumerate(fitted.messages):
            if message.get("tool_calls"):
                assert roles[index + 1] == "tool"
            if message["role"] == "tool":
                assert fitted.messages[index - 1].get("tool_calls")
        assert roles[0] == "user"


def test_a_newest_turn_too_long_loses_its_oldest_tool_rounds_not_its_question() -> None:
    new = [Message(role="user", content="question")]
    context = RequestContext(turn("old"), new)
    for index in range(4):
        call = ToolCall(id=f"c{index}", name="lookup", arguments={})
        context.append(
            [
                Message(role="assistant", tool_calls=[call]),
                Message(role="tool", content=words(f"result{index}", 200), tool_call_id=call.id),
            ]
        )
    fitted = context.fit(Budget(window=1000, answer=100))
    sent = contents(fitted.messages)
    assert sent[0] == "question"
    assert sent[-1].startswith("result3")  # the latest round
    assert not any(text.startswith("result0") for text in sent)
    assert fitted.dropped == 2 + (10 - len(sent) - 1)


def test_leading_system_messages_of_the_history_stay() -> None:
    history = [Message(role="system", content="seeded rules"), *turn("a"), *turn("b")]
    context = RequestContext(history, [Message(role="user", content=words("now"))])
    fitted = context.fit(Budget(window=400, answer=100))
    assert contents(fitted.messages)[0] == "seeded rules"
    assert fitted.dropped >= 2


def test_a_stored_summary_stands_for_the_messages_it_covers() -> None:
    history = turn("a") + turn("b")
    summary = Message(role="system", content="Summary: a and b", metadata={SUMMARY_KEY: 2})
    history += [summary, *turn("c")]
    context = RequestContext(history, [Message(role="user", content="now")])
    fitted = context.fit(None)
    sent = contents(fitted.messages)
    assert sent[0] == "Summary: a and b"
    assert sent[1].startswith("b-question")
    assert sent[-1] == "now"
    assert fitted.summarized == 2
    assert context.all_messages()[0] is summary


# -- through the agent and the scripted model server ---------------------------------------------


def responder(request: dict[str, Any]) -> Reply:
    messages = request["messages"]
    if str(messages[0].get("content", "")).startswith("You condense"):
        return Reply.text("They talked about many numbered things.")
    return Reply.text("echo " + words(str(messages[-1]["content"]).split()[0]))


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=responder) as server:
        yield server


def interface(server: ScriptedModelServer, **settings: Any) -> DirectChatInterface:
    loaded = load_settings(
        read_file=False,
        environ={},
        model="openai/scripted",
        models={"openai/scripted": ModelConfig(context_window=1200, api_base=server.url)},
        retries=0,
        **settings,
    )
    return DirectChatInterface(InterfaceConfig(use_environment=False), settings=loaded)


async def talk(chat: DirectChatInterface, turns: int) -> tuple[str, list[Any]]:
    session = None
    outputs = []
    for index in range(turns):
        output = await chat.chat(ChatInput(message=words(f"q{index}"), session_id=session))
        session = output.session_id
        outputs.append(output)
    assert session is not None
    return session, outputs


async def test_a_long_session_sends_only_what_fits_and_stores_everything(
    server: ScriptedModelServer,
) -> None:
    async with interface(server, system_prompt="Be brief.") as chat:
        session, outputs = await talk(chat, 8)
        stream = chat.stream_chat(ChatInput(message=words("last"), session_id=session))
        events = [event async for event in stream.events()]
    sent = server.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1]["content"].startswith("last")
    assert len(sent) < 1 + 8 * 2 + 1
    complete = events[-1].data
    assert complete["messages_sent"] == len(sent)
    assert complete["messages_dropped"] == 8 * 2 + 2 - len(sent)
    assert "messages_summarized" not in complete
    # the first turns were sent whole while they fitted
    assert [m["role"] for m in server.requests[1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    history = await chat.get_history(session)
    assert len(history) == 9 * 2  # nothing stored is lost
    assert outputs[0].status == "completed"


async def test_summarize_replaces_the_oldest_turns_once_and_reuses_the_summary(
    server: ScriptedModelServer,
) -> None:
    async with interface(server, context="summarize") as chat:
        session, _ = await talk(chat, 7)
        history = await chat.get_history(session)
    summaries = [m for m in history if SUMMARY_KEY in m.metadata]
    assert summaries, "a summary was written"
    first = summaries[0]
    assert first.role == "system"
    assert "many numbered things" in (first.content or "")
    assert first.metadata["model"] == "openai/scripted"
    assert first.metadata["usage"]["total_tokens"] > 0
    summary_requests = [
        r for r in server.requests if r["messages"][0]["content"].startswith("You condense")
    ]
    # a transcript longer than the window is read in parts, each after the summary so far
    assert len(summaries) <= len(summary_requests) <= 4 * len(summaries)
    if len(summary_requests) > 1:
        assert "[summary of the conversation before]" in str(summary_requests[1])
    # once made, a summary serves the next turns: not one per turn
    assert len(summaries) < 7 // 2
    assert [m.metadata[SUMMARY_KEY] for m in summaries] == sorted(
        {m.metadata[SUMMARY_KEY] for m in summaries}
    )
    assert not any(str(m["content"]).startswith("q0 ") for m in server.requests[-1]["messages"])
    assert "user: q0 word" in summary_requests[0]["messages"][1]["content"]
    # the request after a summary carries it in place of the turns it covers
    last = server.requests[-1]["messages"]
    assert last[0]["role"] == "system"
    assert "many numbered things" in last[0]["content"]
    # every user message is still stored
    assert sum(1 for m in history if m.role == "user") == 7


async def test_a_run_with_many_tool_rounds_keeps_its_question_and_latest_round() -> None:
    from chat_shell import (
        ChatAgent,
        MemoryStorage,
        ModelChoice,
        ModelRequest,
        ModelSpec,
        RunPlan,
        tool as make_tool,
    )
    from chat_shell.testing import FunctionModel, ScriptedToolCall

    @make_tool
    def lookup(q: str) -> str:
        """Look something up.

        Args:
            q: what to look up
        """
        return f"{q}: " + "data " * 200

    def answer(request: ModelRequest) -> Reply:
        rounds = sum(1 for m in request.messages if m["role"] == "tool")
        if len(model.requests) < 5:
            call = ScriptedToolCall("lookup", {"q": f"r{len(model.requests) - 1}"})
            return Reply(tool_calls=[call])
        return Reply.text(f"done after seeing {rounds} results")

    model = FunctionModel(answer, model_name="function/small")
    spec = ModelSpec(
        name="function/small", provider="custom", provider_model="m", context_window=1200
    )
    storage = MemoryStorage()
    plan = RunPlan(
        session_id="tools-1",
        new_messages=[Message(role="user", content="find it")],
        models=[ModelChoice(spec, model)],
        tools={"lookup": lookup},
    )
    run = await ChatAgent(storage.history).start(plan).wait()
    assert run.state == "completed"
    last = model.requests[-1].messages
    assert last[0] == {"role": "user", "content": "find it"}
    assert last[-1]["role"] == "tool"
    assert last[-1]["content"].startswith("r3")  # the latest round
    assert not any(str(m["content"]).startswith("r0") for m in last)  # the oldest went
    assert last[-2]["tool_calls"][0]["id"] == last[-1]["tool_call_id"]
    complete = run.events[-1].data
    assert complete["messages_dropped"] > 0
    assert complete["messages_sent"] == len(last)
    stored = await storage.history.get_history("tools-1")
    assert sum(1 for m in stored if m.role == "tool") == 4  # all kept in the history
