"""What the CLI shows: replays, search matches, tool lists, tool calls, counts, banners,
unknown tools and named sessions — through the real console script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from cli_support import Run, Terminal

TOOL_TURN = 'call calculator {"expression": "6 * 7"}'


def _session(cli: Run, message: str, *args: str) -> str:
    result = cli("query", "--json", *args, message)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["session_id"])


def _blocks(text: str) -> list[list[str]]:
    """A replay as its blocks: a heading line, then what was said under it."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if re.match(r"You · |Assistant\b|System\b", line):
            blocks.append([line])
        elif blocks and line.strip():
            blocks[-1].append(line)
    return blocks


def test_history_show_puts_tool_calls_under_the_assistant(cli: Run) -> None:
    session = _session(cli, TOOL_TURN)
    _session(cli, "and now words", "--session", session)
    blocks = _blocks(cli("history", "show", session).stdout)
    headings = [block[0].split(" ")[0] for block in blocks]
    assert headings == ["You", "Assistant", "You", "Assistant"]  # one heading per turn
    you, assistant = blocks[0], blocks[1]
    assert you[1:] == [TOOL_TURN]
    assert assistant[1:] == ['🔧 calculator(expression="6 * 7")', "  ✅ 42", "result: 42"]


def test_slash_history_puts_tool_calls_under_the_assistant(cli: Run) -> None:
    result = cli("chat", input=f"{TOOL_TURN}\n/history\n")
    assert result.returncode == 0, result.stderr
    replay = result.stdout.split("result: 42", 1)[1]  # after the live answer
    blocks = _blocks(replay)
    assert [block[0].split(" ")[0] for block in blocks] == ["You", "Assistant"]
    assert blocks[1][1:] == ['🔧 calculator(expression="6 * 7")', "  ✅ 42", "result: 42"]


def test_an_answer_stopped_before_any_text_is_shown_under_the_assistant(
    cli: Run, tmp_path: Path
) -> None:
    lines = [
        {"type": "session", "id": "stopped", "created_at": 1.0, "updated_at": 2.0},
        {"type": "message", "session_id": "stopped", "role": "user", "content": "hello?"},
        {
            "type": "message",
            "session_id": "stopped",
            "role": "assistant",
            "content": "",
            "metadata": {"status": "cancelled"},
        },
    ]
    export = tmp_path / "stopped.jsonl"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli("history", "import", str(export)).returncode == 0
    blocks = _blocks(cli("history", "show", "stopped").stdout)
    assert blocks[0][1:] == ["hello?"]
    assert blocks[1][1:] == ["[cancelled]"]


@pytest.mark.slow
def test_search_in_a_terminal_shows_matches_in_bold(cli: Run, env: dict[str, str]) -> None:
    _session(cli, "the purple elephant")
    terminal = Terminal(["history", "search", "purple"], env)
    try:
        terminal.expect(r"elephant")
        assert terminal.close() == 0
    finally:
        terminal.kill()
    raw = terminal.raw.decode()
    assert re.search(r"\x1b\[1m(\x1b\[[0-9;]*m)*purple", raw), raw
    assert "**" not in terminal.text
    # without a terminal the index's marks stay, to say where the match is
    assert "**purple**" in cli("history", "search", "purple").stdout


def test_tools_are_listed_in_aligned_columns(cli: Run) -> None:
    result = cli("chat", input="/tools\n")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    names = [row.split()[0] for row in rows]
    assert {"calculator", "current_time", "fetch_url"} <= set(names)
    assert len({len(name) for name in names}) > 1  # names of different lengths…
    starts = {len(row) - len(row[2:].lstrip(" ").split("  ", 1)[1].lstrip(" ")) for row in rows}
    assert len(starts) == 1, rows  # …and every description starts in the same column


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [
        ({"expression": "1 + 1"}, 'calculator(expression="1 + 1")'),
        ({"x": 1}, "calculator(x=1)"),
        ({"a": 1, "b": "two"}, 'calculator(a=1, b="two")'),
        ({}, "calculator()"),
    ],
)
def test_a_tool_call_shows_its_argument_names(
    cli: Run, server: ScriptedModelServer, arguments: dict[str, object], shown: str
) -> None:
    server.add(Reply.tool("calculator", arguments))
    result = cli("query", "compute")
    assert f"🔧 {shown}" in result.stderr


@pytest.mark.slow
def test_counts_are_singular_for_one(cli: Run, tmp_path: Path) -> None:
    one = _session(cli, "alone")
    export = tmp_path / "one.jsonl"
    assert cli("history", "export", one, "-o", str(export)).stderr.startswith(
        "exported 1 session to"
    )
    imported = cli("history", "import", str(export), "--storage", "json")
    assert imported.stdout == "imported 1 session (2 messages)\n"
    _session(cli, "a second one")
    both = cli("history", "export").stdout
    imported = cli("history", "import", "-", "--storage", "memory", input=both)
    assert imported.stdout == "imported 2 sessions (4 messages)\n"
    shown = cli("history", "show", one).stdout
    assert "started " in shown
    assert ", 2 messages" in shown


def test_chat_without_a_terminal_keeps_notes_off_stdout(cli: Run) -> None:
    result = cli("chat", input='first\ncall calculator {"expression": "2 + 3"}\n')
    assert result.returncode == 0, result.stderr
    # the answers, and nothing else, on stdout
    assert result.stdout.splitlines() == ["echo: first", "result: 5"]
    banner = [line for line in result.stderr.splitlines() if line.startswith("chat-shell · ")]
    assert len(banner) == 1
    assert len(banner[0]) > 100  # longer than rich's default width, and not wrapped
    assert banner[0].endswith("/help for commands, Ctrl-D to leave")
    assert '🔧 calculator(expression="2 + 3")' in result.stderr


def test_an_unknown_tool_says_which_are_available_and_which_need_enabling(cli: Run) -> None:
    result = cli("query", "-t", "nosuchtool", "hi")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("chat-shell: unknown tool 'nosuchtool': ")
    available = re.search(r"available: ([^;]*)", line)
    needing = re.search(r"off until configured[^:]*: (.*)$", line)
    assert available is not None
    assert needing is not None
    assert available.group(1).split(", ") == ["calculator", "current_time", "fetch_url"]
    assert needing.group(1).split(", ") == ["list_files", "read_file", "web_search"]


def test_a_configured_file_root_makes_the_file_tools_available(cli: Run, tmp_path: Path) -> None:
    result = cli(
        "query",
        "-t",
        "nosuch",
        "-t",
        "other",
        "hi",
        extra_env={"CHAT_SHELL_FILE_ROOT": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "unknown tools 'nosuch', 'other'" in result.stderr
    assert "available: calculator, current_time, fetch_url, list_files, read_file;" in (
        result.stderr
    )
    assert result.stderr.rstrip().endswith(": web_search")


def test_an_unknown_tool_in_the_tools_setting_says_so(cli: Run) -> None:
    result = cli("query", "hi", extra_env={"CHAT_SHELL_TOOLS": "calculator,nosuchtool"})
    assert result.returncode == 2
    assert "unknown tool 'nosuchtool' in the `tools` setting" in result.stderr


@pytest.mark.slow
def test_session_names_a_new_session(cli: Run, server: ScriptedModelServer) -> None:
    first = cli("query", "--session", "work-notes", "remember pears")
    assert first.returncode == 0, first.stderr
    second = cli("query", "--json", "--session", "work-notes", "and apples")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["session_id"] == "work-notes"
    assert [m["content"] for m in server.requests[-1]["messages"]] == [
        "remember pears",
        "echo: remember pears",
        "and apples",
    ]
    listing = json.loads(cli("history", "--json").stdout)
    assert [(s["id"], s["title"]) for s in listing] == [("work-notes", "remember pears")]


@pytest.mark.slow
def test_session_still_takes_a_unique_prefix(cli: Run, server: ScriptedModelServer) -> None:
    session = _session(cli, "one")
    result = cli("query", "--json", "--session", session[:8], "two")
    assert json.loads(result.stdout)["session_id"] == session
    assert len(server.requests[-1]["messages"]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["../etc/x", "-dash-first", "a b", "x" * 129, "é"])
def test_a_session_name_that_is_not_a_valid_id_changes_nothing(cli: Run, name: str) -> None:
    result = cli("query", "--session", name, "hi")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(cli("history", "--json").stdout) == []


@pytest.mark.slow
def test_chat_with_a_new_session_name(cli: Run) -> None:
    result = cli("chat", "--session", "fresh-start", input="hello\n/session\n")
    assert result.returncode == 0, result.stderr
    assert "session fresh-start (new)" in result.stderr
    assert "session: fresh-start" in result.stdout
    again = cli("chat", "--session", "fresh-start", input="")
    assert "session fresh-start (continued)" in again.stderr
    assert "2 earlier messages" in again.stderr
