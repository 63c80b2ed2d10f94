"""``chat-shell chat`` in a real pseudo-terminal, looked at as a terminal emulator draws it:
Ctrl-C during an answer, and keys typed while an answer streams."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from cli_support import Terminal

WORDS = [f"word{i} " for i in range(400)]
ANSWERS = {
    "a heading line, then a paragraph": ["First line of the story.\n\n", *WORDS],
    "one long paragraph": ["Once ", *WORDS],
    "a list": ["- first item\n", *[f"- item {i}\n" for i in range(200)]],
    # a first line that fills the terminal's width exactly (120 columns)
    "a full-width line": ["F" * 120 + "\n\n", *WORDS],
}


@pytest.fixture
def terminal(env: dict[str, str]) -> Iterator[Terminal]:
    running = Terminal(["chat"], env)
    try:
        running.expect(r"❯")
        yield running
    finally:
        running.kill()


def _first_line(chunks: list[str]) -> str:
    text = chunks[0].strip()
    return text.removeprefix("- ")


@pytest.mark.parametrize("answer", list(ANSWERS), ids=list(ANSWERS))
def test_ctrl_c_leaves_the_partial_answer_on_screen_once(
    terminal: Terminal, server: ScriptedModelServer, answer: str
) -> None:
    chunks = ANSWERS[answer]
    server.add(Reply(chunks=chunks, delay=0.05))
    terminal.type("tell me a story\r")
    terminal.expect(r"word30 |item 12\b")  # stopped while the answer still fits the screen
    terminal.type("\x03")
    terminal.expect(r"stopped")
    terminal.expect(r"❯")
    terminal.settle()
    screen = terminal.screen()
    first = _first_line(chunks)
    assert sum(first in line for line in screen) == 1, "\n".join(screen)
    assert not any("^C" in line for line in screen), "\n".join(screen)
    assert sum(line.startswith("❯ tell me a story") for line in screen) == 1


def test_keys_typed_during_an_answer_wait_in_the_next_prompt(
    terminal: Terminal, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(60, delay=0.03))
    terminal.type("tell me a story\r")
    terminal.expect(r"t5 ")
    terminal.type("and nexx\x7ft one")  # Backspace included
    terminal.expect(r"t59 ")
    terminal.expect(r"❯ and next one")  # in the prompt, not in the answer
    terminal.settle()
    screen = terminal.screen()
    answer = [line for line in screen if "t30 " in line or "t59 " in line]
    assert answer
    assert all("next" not in line and "nex" not in line for line in answer), "\n".join(screen)
    assert screen.count("❯ and next one") == 1, "\n".join(screen)
    terminal.type("\r")  # sent as typed
    terminal.expect(r"echo: and next one")
    assert server.requests[-1]["messages"][-1]["content"] == "and next one"


def test_a_question_typed_with_enter_during_an_answer_is_sent_after_it(
    terminal: Terminal, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(60, delay=0.03))
    terminal.type("tell me a story\r")
    terminal.expect(r"t5 ")
    terminal.type("and then?\r")
    terminal.expect(r"t59 ")
    terminal.expect(r"echo: and then\?")
    terminal.settle()
    screen = terminal.screen()
    assert screen.count("❯ and then?") == 1, "\n".join(screen)
    answer = [line for line in screen if "t30 " in line]
    assert answer
    assert "then" not in answer[0]


def test_keys_typed_before_ctrl_c_are_kept_too(
    terminal: Terminal, server: ScriptedModelServer
) -> None:
    server.add(Reply.tokens(400, delay=0.03))
    terminal.type("tell me a story\r")
    terminal.expect(r"t5 ")
    terminal.type("later ")
    terminal.type("\x03")
    terminal.expect(r"stopped")
    terminal.expect(r"❯ later")
    terminal.type("question\r")
    terminal.expect(r"echo: later question")


def test_typing_and_an_approval_question_during_an_answer(
    env: dict[str, str], server: ScriptedModelServer, tmp_path: Path
) -> None:
    """A tool that asks first: its question gets the keys, the answer goes on held."""
    plugin = tmp_path / "plugin"
    info = plugin / "guarded_tool-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: guarded-tool\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[chat_shell.tools]\nguarded = guarded_tool:guarded\n")
    (plugin / "guarded_tool.py").write_text(
        textwrap.dedent(
            '''
            from chat_shell import tool

            @tool(requires_approval=True)
            def guarded(word: str) -> str:
                """Say the word back, once allowed."""
                return f"allowed {word}"
            '''
        )
    )
    server.add(Reply.tool("guarded", {"word": "hello"}, first_delay=0.3))
    running = Terminal(["chat"], {**env, "PYTHONPATH": str(plugin)})
    try:
        running.expect(r"❯")
        running.type("use the guarded tool\r")
        running.expect(r'Allow 🔧 guarded\(word="hello"\)\? \[y\]es / \[N\]o / \[a\]lways')
        running.type("y\r")
        running.expect(r"✅ allowed hello")
        running.expect(r"result: allowed hello")
        running.expect(r"❯")
        running.type("exit\r")
        assert running.close() == 0
    finally:
        running.kill()
