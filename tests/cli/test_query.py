"""``chat-shell query`` against the scripted model server."""

from __future__ import annotations

import json

from chat_shell.testing import Reply, ScriptedModelServer
from cli_support import Run


def test_answer_streams_to_stdout(cli: Run) -> None:
    result = cli("query", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: hello there\n"
    assert "\x1b[" not in result.stdout + result.stderr  # no colour when not a terminal


def test_stdin_is_appended_to_the_message(cli: Run, server: ScriptedModelServer) -> None:
    result = cli("query", "review this", input="+ added line\n")
    assert result.returncode == 0, result.stderr
    assert server.requests[-1]["messages"][-1]["content"] == "review this\n\n+ added line"


def test_tool_call_and_result_on_stderr(cli: Run) -> None:
    result = cli("query", 'call calculator {"expression": "123 * 456"}')
    assert result.returncode == 0, result.stderr
    assert '🔧 calculator(expression="123 * 456")' in result.stderr
    assert "✅ 56088" in result.stderr
    assert result.stdout.strip() == "result: 56088"


def test_json_prints_the_final_output(cli: Run) -> None:
    result = cli("query", "--json", "tokens 3")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["content"] == "t0 t1 t2 "
    assert output["status"] == "completed"


def test_events_are_json_lines(cli: Run) -> None:
    result = cli("query", "--events", "tokens 2")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [event["event_type"] for event in events] == ["content", "content", "complete"]
    assert [event["seq"] for event in events] == [0, 1, 2]


def test_options_reach_the_model(cli: Run, server: ScriptedModelServer) -> None:
    result = cli("query", "-m", "openai/other", "-s", "be brief", "--no-tools", "hi")
    assert result.returncode == 0, result.stderr
    request = server.requests[-1]
    assert request["model"] == "other"
    assert request["messages"][0] == {"role": "system", "content": "be brief"}
    assert "tools" not in request or not request["tools"]
    result = cli("query", "--tool", "calculator", "hi")
    assert [t["function"]["name"] for t in server.requests[-1]["tools"]] == ["calculator"]


def test_continue_and_session(cli: Run, server: ScriptedModelServer) -> None:
    first = json.loads(cli("query", "--json", "first question").stdout)
    assert cli("query", "--continue", "second").returncode == 0
    assert [m["content"] for m in server.requests[-1]["messages"]][-3:] == [
        "first question",
        "echo: first question",
        "second",
    ]
    prefix = first["session_id"][:8]
    assert cli("query", "--session", prefix, "third").returncode == 0
    assert server.requests[-1]["messages"][-1]["content"] == "third"
    assert len(server.requests[-1]["messages"]) == 5


def test_no_store_keeps_nothing(cli: Run) -> None:
    assert cli("query", "--no-store", "hi").returncode == 0
    listing = json.loads(cli("history", "--json").stdout)
    assert listing == []


def test_model_failure_exits_1_with_the_reason(cli: Run, server: ScriptedModelServer) -> None:
    server.add(Reply.error(400, "the model is unhappy"))
    result = cli("query", "hi")
    assert result.returncode == 1
    assert "the model is unhappy" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_tool_failure_the_model_answered_past_exits_0(cli: Run) -> None:
    result = cli("query", 'call calculator {"expression": "1 / 0"}')
    assert result.returncode == 0, result.stderr
    assert "❌" in result.stderr  # the failure is shown where it happened
    assert "failed" not in result.stderr.strip().splitlines()[-1]
    assert result.stdout.startswith("result: ")  # and the model answered
    output = json.loads(cli("query", "--json", 'call calculator {"expression": "1 / 0"}').stdout)
    assert output["status"] == "completed"
    assert "error" in output["metadata"]["tool_calls"][0]


def test_a_model_failure_after_a_tool_failure_exits_1(
    cli: Run, server: ScriptedModelServer
) -> None:
    server.add(Reply.tool("calculator", {"expression": "1 / 0"}))
    server.add(Reply.error(400, "the model gave up"))
    result = cli("query", "divide")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("chat-shell: ")
    assert "the model gave up" in last


def test_missing_credentials(cli: Run) -> None:
    result = cli("query", "hi", extra_env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "OPENAI_API_KEY" in lines[0]
    assert "config set" in lines[0]


def test_bad_input(cli: Run) -> None:
    for args, text in [
        (("query", "--session", "../nope", "hi"), "invalid session id '../nope'"),
        (("query", "--storage", "bogus", "hi"), "unknown storage backend 'bogus'"),
        (("query", "--continue", "hi"), "no session to continue"),
        (("query",), "nothing to ask"),
        (("query", "--json", "--events", "hi"), "choose one"),
    ]:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert text in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
