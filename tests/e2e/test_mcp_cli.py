"""MCP tools through the real console script: ``chat-shell mcp``, ``query`` with and without
``--yes``, ``chat``'s approval answers, and ``chat-shell serve`` with approval turned off
(asking over HTTP: test_http_approval.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from serve_support import (
    ASK_TIME,
    TIME_SERVER,
    TIME_TOML,
    Serve,
    run_cli,
    script_env,
    write_home,
)

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_mcp")


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, upstream: ScriptedModelServer) -> dict[str, str]:
    return script_env(write_home(tmp_path / "home", upstream.url, tables=TIME_TOML))


def test_mcp_lists_servers_state_and_tools(env: dict[str, str]) -> None:
    shown = run_cli(env, "mcp")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"time (stdio: {TIME_SERVER} --local-timezone UTC) — ok"
    assert any(line.startswith("  time_get_current_time (asks first)") for line in lines)
    assert any(line.startswith("  time_convert_time (asks first)") for line in lines)

    as_json = json.loads(run_cli(env, "mcp", "--json").stdout)
    [server] = as_json["servers"]
    assert server["name"] == "time"
    assert server["transport"] == "stdio"
    assert {tool["name"] for tool in server["tools"]} == {
        "time_get_current_time",
        "time_convert_time",
    }

    unstarted = json.loads(run_cli(env, "mcp", "--json", "--no-start").stdout)
    assert unstarted["servers"][0]["state"] == "stopped"
    assert unstarted["servers"][0]["tools"] == []


def test_mcp_exits_1_when_a_server_fails(
    env: dict[str, str], tmp_path: Path, upstream: ScriptedModelServer
) -> None:
    write_home(
        tmp_path / "home", upstream.url, tables='[mcp_servers.gone]\ncommand = "/nonexistent/x"\n'
    )
    shown = run_cli(env, "mcp")
    assert shown.returncode == 1
    assert "gone (stdio: /nonexistent/x) — failed" in shown.stdout
    assert "error: could not start" in shown.stdout


def test_a_bad_server_entry_is_one_line_and_exit_2(
    env: dict[str, str], tmp_path: Path, upstream: ScriptedModelServer
) -> None:
    write_home(
        tmp_path / "home",
        upstream.url,
        tables='[mcp_servers.both]\ncommand = "x"\nurl = "http://a"\n',
    )
    shown = run_cli(env, "mcp")
    assert shown.returncode == 2
    assert shown.stderr.strip().splitlines() == [
        "chat-shell: [mcp_servers.both]: server: Value error, give either `command` (stdio) "
        "or `url` (streamable HTTP)"
    ]


def test_query_yes_approves_the_call(env: dict[str, str]) -> None:
    answered = run_cli(env, "query", "--yes", "--no-store", ASK_TIME)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("result: {")
    assert '"timezone": "Asia/Tokyo"' in answered.stdout


def test_query_events_show_the_approval_request(env: dict[str, str]) -> None:
    answered = run_cli(env, "query", "--yes", "--no-store", "--events", ASK_TIME)
    assert answered.returncode == 0, answered.stderr
    events = [json.loads(line) for line in answered.stdout.splitlines()]
    kinds = [event["event_type"] for event in events]
    assert kinds.index("tool_call") < kinds.index("approval_required") < kinds.index("tool_result")
    asked = events[kinds.index("approval_required")]["data"]
    assert asked["name"] == "time_get_current_time"
    assert asked["arguments"] == {"timezone": "Asia/Tokyo"}
    assert asked["expires_at"] is None  # the terminal asks (here: --yes answers) at once


def test_query_without_the_flag_refuses_and_says_so(env: dict[str, str]) -> None:
    answered = run_cli(env, "query", "--no-store", ASK_TIME)
    assert answered.returncode == 0, answered.stderr
    assert "was not approved" in answered.stdout  # what the model was told
    assert "time_get_current_time" in answered.stderr
    assert "was not approved: it needs approval; pass --yes to allow every call" in (
        answered.stderr
    )


def test_query_tool_flag_narrows_to_mcp_tools(env: dict[str, str]) -> None:
    answered = run_cli(env, "query", "--events", "--no-store", "-t", "time_convert_time", "hi")
    assert answered.returncode == 0, answered.stderr
    unknown = run_cli(env, "query", "--no-store", "-t", "time_nothing", "hi")
    assert unknown.returncode == 2
    assert "unknown tool 'time_nothing'" in unknown.stderr


def test_chat_always_approves_for_the_rest_of_the_session(env: dict[str, str]) -> None:
    # no terminal: one message per line, and the approval answer is the next line
    talk = run_cli(env, "chat", input=f"{ASK_TIME}\na\n{ASK_TIME}\n")
    assert talk.returncode == 0, talk.stderr
    assert talk.stdout.count("Allow 🔧 time_get_current_time") == 1
    assert "[a]lways this session" in talk.stdout
    assert talk.stdout.count('"timezone": "Asia/Tokyo"') == 2


def test_chat_no_refuses_the_call(env: dict[str, str]) -> None:
    talk = run_cli(env, "chat", input=f"{ASK_TIME}\nn\n")
    assert talk.returncode == 0, talk.stderr
    assert "was not approved: the user declined to run it" in talk.stdout


@pytest.fixture
def serve_no_approval(
    env: dict[str, str], tmp_path: Path, upstream: ScriptedModelServer
) -> Iterator[str]:
    write_home(tmp_path / "home", upstream.url, tables=TIME_TOML + "requires_approval = false\n")
    yield from _serve(env)


def _serve(env: dict[str, str]) -> Iterator[str]:
    pytest.importorskip("chat_shell_http")
    with Serve(env) as serve:
        yield serve.url


def _ask_over_http(url: str) -> dict[str, object]:
    reply = httpx.post(
        f"{url}/v1/response",
        json={"stream": False, "messages": [{"role": "user", "content": ASK_TIME}]},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def test_serve_runs_a_tool_the_operator_allowed(serve_no_approval: str) -> None:
    content = str(_ask_over_http(serve_no_approval)["content"])
    assert content.startswith("result: {")
    assert "Asia/Tokyo" in content
