"""``chat-shell chat`` in a real pseudo-terminal: type, watch the stream, Ctrl-C, /history, exit."""

from __future__ import annotations

import subprocess

import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from cli_support import SCRIPT, Terminal


def test_interactive_session(env: dict[str, str], server: ScriptedModelServer) -> None:
    terminal = Terminal(["chat"], env)
    try:
        terminal.expect(r"/help for commands")
        terminal.type('call calculator {"expression": "123 * 456"}\r')
        terminal.expect(r'🔧 calculator\(expression="123 \* 456"\)')
        terminal.expect(r"✅ 56088")
        terminal.expect(r"result: 56088")
        # a slow answer, stopped with Ctrl-C part-way; the session goes on
        server.add(Reply.tokens(400, delay=0.05))
        terminal.type("tell me a long story\r")
        terminal.expect(r"t3 ")
        terminal.type("\x03")
        terminal.expect(r"stopped")
        terminal.type("/history\r")
        terminal.expect(r"You ·")
        terminal.expect(r"✅ 56088")
        terminal.expect(r"tell me a long story")
        terminal.expect(r"\[cancelled\]")
        terminal.type("/session\r")
        terminal.expect(r"session: [0-9a-f-]{36}")
        terminal.type("exit\r")
        assert terminal.close() == 0
    finally:
        terminal.kill()
    # the partial answer is stored, marked cancelled
    stream = server.requests[-1]["messages"]
    assert stream[-1]["content"] == "tell me a long story"


@pytest.mark.slow
def test_continue_and_slash_commands(env: dict[str, str], server: ScriptedModelServer) -> None:
    subprocess.run(
        [str(SCRIPT), "query", "remember pears"],
        env=env,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    terminal = Terminal(["chat", "--continue"], env)
    try:
        terminal.expect(r"\(continued\)")
        terminal.type("/model openai/other\r")
        terminal.expect(r"model: openai/other")
        terminal.type("and apples\r")
        terminal.expect(r"echo: and apples")
        assert [m["content"] for m in server.requests[-1]["messages"]][-3:] == [
            "remember pears",
            "echo: remember pears",
            "and apples",
        ]
        assert server.requests[-1]["model"] == "other"
        terminal.type("/retry\r")
        terminal.expect(r"retrying")
        terminal.expect(r"echo: and apples")
        assert len(server.requests[-1]["messages"]) == 3
        terminal.type("/tools\r")
        terminal.expect(r"calculator")
        terminal.type("/nope\r")
        terminal.expect(r"unknown command /nope")
        terminal.type("/new\r")
        terminal.expect(r"new session")
        terminal.expect(r"❯")
        terminal.type("\x04")
        assert terminal.close() == 0
    finally:
        terminal.kill()


def test_missing_credentials_before_the_first_question(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(SCRIPT), "chat"],
        env={**env, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "OPENAI_API_KEY" in result.stderr


@pytest.mark.slow
def test_piped_lines(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(SCRIPT), "chat"],
        env=env,
        input="first\n/session\nsecond\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "echo: first" in result.stdout
    assert "echo: second" in result.stdout
    assert "session: " in result.stdout
