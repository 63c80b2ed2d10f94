"""``chat-shell history``: list, show, search, delete, export, import."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cli_support import Run


def _session(cli: Run, message: str) -> str:
    result = cli("query", "--json", message)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["session_id"])


@pytest.mark.slow
def test_list_newest_first_with_limit(cli: Run) -> None:
    assert cli("history").stdout.startswith("no sessions yet")
    first = _session(cli, "first")
    second = _session(cli, "second")
    listing = json.loads(cli("history", "--json").stdout)
    assert [s["id"] for s in listing] == [second, first]
    assert listing[0]["title"] == "second"
    assert len(json.loads(cli("history", "--limit", "1", "--json").stdout)) == 1
    table = cli("history").stdout
    assert table.index(second) < table.index(first)


@pytest.mark.slow
def test_show_replays_tool_calls(cli: Run) -> None:
    session = _session(cli, 'call calculator {"expression": "123 * 456"}')
    result = cli("history", "show", session[:8])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert 'call calculator {"expression": "123 * 456"}' in text
    assert '🔧 calculator(expression="123 * 456")' in text
    assert "✅ 56088" in text
    assert "result: 56088" in text
    data = json.loads(cli("history", "show", session, "--json").stdout)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool", "assistant"]


@pytest.mark.slow
def test_search(cli: Run) -> None:
    session = _session(cli, "the purple elephant")
    _session(cli, "something else")
    hits = json.loads(cli("history", "search", "purple", "--json").stdout)
    assert {hit["session_id"] for hit in hits} == {session}
    assert "nothing found" in cli("history", "search", "zebra").stdout


@pytest.mark.slow
def test_search_without_an_index(cli: Run) -> None:
    result = cli("query", "--storage", "json", "--json", "the purple elephant")
    session = json.loads(result.stdout)["session_id"]
    hits = json.loads(cli("history", "search", "PURPLE", "--storage", "json", "--json").stdout)
    assert {hit["session_id"] for hit in hits} == {session}


@pytest.mark.slow
def test_delete_asks_unless_yes(cli: Run) -> None:
    session = _session(cli, "doomed")
    refused = cli("history", "delete", session)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert cli("history", "show", session).returncode == 0
    assert cli("history", "delete", session, "--yes").returncode == 0
    gone = cli("history", "show", session)
    assert gone.returncode == 2
    assert (
        gone.stderr.strip()
        == f"chat-shell: no session {session!r}, nor one whose id starts with it"
        " (see `chat-shell history`)"
    )


@pytest.mark.slow
def test_export_and_import(cli: Run, tmp_path: Path) -> None:
    session = _session(cli, 'call calculator {"expression": "2 + 2"}')
    exported = cli("history", "export")
    assert exported.returncode == 0
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert lines[0]["type"] == "session"
    assert lines[0]["id"] == session
    target = tmp_path / "one.jsonl"
    written = cli("history", "export", session[:6], "-o", str(target))
    assert written.returncode == 0
    assert written.stderr == f"exported 1 session to {target}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # into another backend, then back again: nothing is duplicated
    result = cli("history", "import", str(target), "--storage", "json")
    assert result.returncode == 0
    assert result.stdout == "imported 1 session (4 messages)\n"
    again = cli("history", "import", "-", input=exported.stdout)
    assert "imported 0 sessions" in again.stdout
    assert "skipped" in again.stdout
    shown = cli("history", "show", session, "--storage", "json").stdout
    assert "✅ 4" in shown


@pytest.mark.slow
def test_bad_input_changes_nothing(cli: Run, tmp_path: Path) -> None:
    _session(cli, "keep me")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "session", "id": "x1"}\nnot json\n')
    result = cli("history", "import", str(broken))
    assert result.returncode == 2
    assert "line 1" in result.stderr
    assert cli("history", "export", "nope").returncode == 2
    assert cli("history", "--storage", "bogus").returncode == 2
    assert cli("history", "import", str(tmp_path / "missing.jsonl")).returncode == 2
    assert len(json.loads(cli("history", "--json").stdout)) == 1


def test_remote_storage_without_a_url_says_what_to_set(cli: Run) -> None:
    result = cli("history", "--storage", "remote")
    assert result.returncode == 2
    assert "storage_url" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_query_titles_its_session_in_core(cli: Run) -> None:
    session = _session(cli, "\nWhich rivers cross Paris?\nonly the big ones")
    [info] = json.loads(cli("history", "--json").stdout)
    assert (info["id"], info["title"]) == (session, "Which rivers cross Paris?")
    _session_in(cli, session, "and Lyon?")
    [info] = json.loads(cli("history", "--json").stdout)
    assert info["title"] == "Which rivers cross Paris?"


def test_retry_drops_the_last_question_and_its_answer_in_one_step(cli: Run) -> None:
    session = _session(cli, "first question")
    _session_in(cli, session, "second question")
    result = cli("chat", "--session", session, input="/retry\n")
    assert result.returncode == 0, result.stderr
    assert "retrying: second question" in result.stderr
    data = json.loads(cli("history", "show", session, "--json").stdout)
    assert [m["content"] for m in data["messages"]] == [
        "first question",
        "echo: first question",
        "second question",
        "echo: second question",
    ]
    assert data["session"]["message_count"] == 4


def test_an_ambiguous_or_unknown_prefix_is_one_line_and_exit_2(cli: Run) -> None:
    for name in ("trip-lisbon", "trip-porto"):
        assert cli("query", "--session", name, "hello").returncode == 0
    ambiguous = cli("history", "show", "trip")
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.strip() == (
        "chat-shell: session id 'trip' is ambiguous: trip-lisbon, trip-porto start with it;"
        " give more of the id"
    )
    assert cli("history", "show", "trip-p").returncode == 0
    assert cli("query", "--session", "trip", "again").returncode == 2
    assert cli("history", "delete", "nope", "--yes").returncode == 2
    assert len(json.loads(cli("history", "--json").stdout)) == 2


def _session_in(cli: Run, session: str, message: str) -> None:
    result = cli("query", "--session", session, message)
    assert result.returncode == 0, result.stderr


def test_list_and_show_give_the_usage_and_its_cost(cli: Run) -> None:
    first = json.loads(cli("query", "--json", "one").stdout)
    session = first["session_id"]
    second = json.loads(cli("query", "--json", "--session", session, "two").stdout)
    tokens = first["usage"]["total_tokens"] + second["usage"]["total_tokens"]
    prompt = first["usage"]["prompt_tokens"] + second["usage"]["prompt_tokens"]
    completion = first["usage"]["completion_tokens"] + second["usage"]["completion_tokens"]
    # the default model is openai/gpt-4o-mini: litellm's table prices it
    cost = prompt * 0.15e-6 + completion * 0.6e-6
    listed = json.loads(cli("history", "--json").stdout)[0]
    assert listed["usage"]["total_tokens"] == tokens
    assert listed["usage"]["calls"] == 2
    assert abs(listed["usage"]["cost"] - cost) < 1e-12
    assert listed["usage"]["models"]["openai/gpt-4o-mini"]["prompt_tokens"] == prompt
    table = cli("history").stdout.splitlines()
    assert table[0].split() == ["ID", "UPDATED", "MESSAGES", "TOKENS", "COST", "TITLE"]
    assert f" {tokens} " in table[1]
    assert f"${cost:.6f}" in table[1]
    shown = cli("history", "show", session)
    assert shown.stdout.splitlines()[2] == (  # under the session's heading
        f"usage: {tokens} tokens ({prompt} in, {completion} out) in 2 model calls, ${cost:.6f}"
    )
    data = json.loads(cli("history", "show", session, "--json").stdout)
    assert data["usage"]["total_tokens"] == tokens


def test_a_model_without_a_price_has_tokens_but_no_cost(cli: Run) -> None:
    session = json.loads(cli("query", "--json", "-m", "openai/my-own-model", "hi").stdout)
    listed = json.loads(cli("history", "--json").stdout)[0]
    assert listed["id"] == session["session_id"]
    assert listed["usage"]["total_tokens"] == session["usage"]["total_tokens"] > 0
    assert listed["usage"]["cost"] is None
    assert cli("history").stdout.splitlines()[1].split()[5] == "-"  # after the date, time


def test_query_says_when_earlier_turns_did_not_fit(cli: Run, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[models."openai/gpt-4o-mini"]\ncontext_window = 1000\n', encoding="utf-8"
    )
    long = "word " * 150
    first = cli("query", "--json", "--no-tools", f"first {long}")
    session = json.loads(first.stdout)["session_id"]
    result = cli("query", "--no-tools", "--session", session, f"second {long}")
    assert result.returncode == 0, result.stderr
    assert "earlier message" not in result.stderr
    result = cli("query", "--no-tools", "--session", session, f"third {long}")
    assert (
        "ℹ 2 earlier messages were left out to fit the model's context window"
        " (the history keeps them all)"
    ) in result.stderr
    output = json.loads(
        cli("query", "--json", "--no-tools", "--session", session, f"fourth {long}").stdout
    )
    assert output["messages_sent"] == 3
    assert output["messages_dropped"] == 4
    shown = json.loads(cli("history", "show", session, "--json").stdout)
    assert len(shown["messages"]) == 8
