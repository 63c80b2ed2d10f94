"""MCP servers from config.toml and from an mcpServers JSON file; tool names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_shell import Settings, UserError, load_settings
from chat_shell_mcp import expand_variables, load_servers, tool_names


def test_config_toml_tables(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        """
[mcp_servers.files]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
env = { DEBUG = "1" }
cwd = "/tmp"
tools = ["read_*"]
exclude_tools = ["read_media_file"]
startup_timeout = 5
call_timeout = 20
tool_approval = { read_text_file = false }

[mcp_servers.search]
url = "https://mcp.example.com/mcp"
headers = { Authorization = "Bearer secret-token-value" }
requires_approval = false
"""
    )
    settings = load_settings(tmp_path, environ={})
    servers = load_servers(settings, environ={})
    files, search = servers["files"], servers["search"]
    assert (files.transport, files.command, files.args[0], files.env) == (
        "stdio",
        "npx",
        "-y",
        {"DEBUG": "1"},
    )
    assert files.offers("read_text_file")
    assert not files.offers("read_media_file")
    assert not files.offers("write_file")
    assert not files.needs_approval("read_text_file")
    assert files.needs_approval("read_multiple_files")
    assert (files.startup_timeout, files.call_timeout) == (5, 20)
    assert not files.is_shared  # a stdio server is one per API key by default
    assert search.transport == "http"
    assert search.is_shared
    assert not search.needs_approval("anything")
    # the header's value is a secret: `config show` masks it
    masked = settings.masked()["mcp_servers"]["search"]["headers"]["Authorization"]
    assert "secret-token-value" not in masked


def test_mcp_servers_json_with_variables(tmp_path: Path) -> None:
    (tmp_path / "servers.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "gh": {
                        "command": "github-mcp",
                        "env": {"GITHUB_TOKEN": "${GH_TOKEN}"},
                        "args": ["--host", "${GH_HOST:-github.com}"],
                    },
                    "remote": {
                        "type": "http",
                        "url": "${BASE:-http://127.0.0.1:9}/mcp",
                        "headers": {"X-Key": "${KEY}"},
                    },
                    "off": {"command": "x", "disabled": True},
                }
            }
        )
    )
    settings = Settings(mcp_config="servers.json")
    environ = {"GH_TOKEN": "t0k", "KEY": "k"}
    servers = load_servers(settings, environ=environ, home=tmp_path)
    assert servers["gh"].env == {"GITHUB_TOKEN": "t0k"}
    assert servers["gh"].args == ["--host", "github.com"]
    assert servers["remote"].url == "http://127.0.0.1:9/mcp"
    assert servers["remote"].headers == {"X-Key": "k"}
    assert not servers["off"].enabled


def test_a_missing_variable_names_itself(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"\[mcp_servers.gh\]: the environment variable TOKEN"):
        load_servers(Settings(mcp_servers={"gh": {"command": "x", "env": {"T": "${TOKEN}"}}}))
    assert expand_variables("${A:-}", {}, "here") == ""
    assert expand_variables("${A:-d}", {"A": ""}, "here") == "d"
    assert expand_variables("$A ${A}", {"A": "1"}, "here") == "$A 1"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({}, "give either `command` (stdio) or `url`"),
        ({"command": "x", "url": "http://a"}, "give either"),
        ({"url": "ftp://a"}, "must be an http:// or https:// address"),
        ({"command": "x", "call_timeout": 0}, "call_timeout"),
        ({"command": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_entries_are_user_errors(entry: dict[str, object], problem: str) -> None:
    with pytest.raises(UserError) as caught:
        load_servers(Settings(mcp_servers={"s": entry}), environ={})
    assert caught.value.message.startswith("[mcp_servers.s]: ")
    assert problem in caught.value.message


def test_bad_json_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_servers(Settings(mcp_config=str(tmp_path / "none.json")), environ={})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="is not valid JSON"):
        load_servers(Settings(mcp_config=str(tmp_path / "bad.json")), environ={})
    (tmp_path / "other.json").write_text('{"servers": {}}')
    with pytest.raises(UserError, match='has no "mcpServers" object'):
        load_servers(Settings(mcp_config=str(tmp_path / "other.json")), environ={})
    (tmp_path / "twice.json").write_text('{"mcpServers": {"a": {"command": "x"}}}')
    settings = Settings(
        mcp_servers={"a": {"command": "y"}}, mcp_config=str(tmp_path / "twice.json")
    )
    with pytest.raises(UserError, match="configured twice"):
        load_servers(settings, environ={})
    with pytest.raises(UserError, match="the server name must be"):
        load_servers(Settings(mcp_servers={"bad name": {"command": "x"}}), environ={})


def test_tool_names_are_valid_short_and_distinct() -> None:
    taken = {"files_read"}
    names = tool_names("files", ["read", "read.v2", "é", "x" * 100, "y" * 100], taken)
    assert names["read"].startswith("files_read_")
    assert names["read"] != "files_read"
    assert names["read.v2"] == "files_read_v2"
    assert names["é"] == "files__"
    for name in names.values():
        assert len(name) <= 64
        assert all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in name)
    assert len(set(names.values())) == len(names)
    assert names["x" * 100] != names["y" * 100]
    assert taken >= set(names.values())
    # the same name twice from one server: still distinct
    twice = tool_names("s", ["a.b", "a_b"], set())
    assert len(set(twice.values())) == 2
