"""The command line itself: help, version, exit codes, plugins, docs, what gets imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_docs import COMMANDS, PLUGIN_COMMANDS, documented, name_of, stale
from cli_support import SCRIPT, Run


@pytest.mark.parametrize("command", [" ".join(c) or "(root)" for c in COMMANDS])
def test_every_command_has_help_with_examples(cli: Run, command: str) -> None:
    args = [] if command == "(root)" else command.split()
    result = cli(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: chat-shell")
    assert "Example" in result.stdout


def test_version(cli: Run) -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("chat-shell ")


def test_bare_command_shows_help(cli: Run) -> None:
    result = cli()
    assert result.returncode == 0
    assert "Commands:" in result.stdout


def test_usage_errors_exit_2(cli: Run) -> None:
    result = cli("query", "--no-such-option")
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert cli("no-such-command").returncode == 2


def test_completion_is_offered(cli: Run) -> None:
    assert "--install-completion" in cli("--help").stdout
    # the shell is named, not detected from the parent process
    no_detection = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = cli("--show-completion", "bash", extra_env=no_detection)
    assert result.returncode == 0
    assert "_CHAT_SHELL_COMPLETE" in result.stdout


def test_serve_without_the_http_package(cli: Run) -> None:
    result = cli("serve", "--port", "8000")
    assert result.returncode == 2
    assert result.stderr == (
        "chat-shell: chat-shell serve needs the HTTP server: pip install chat-shell-http\n"
    )


def _plugin(tmp_path: Path, body: str) -> dict[str, str]:
    """A distribution on PYTHONPATH with a ``chat_shell.commands`` entry point."""
    (tmp_path / "hello_plugin.py").write_text(body)
    info = tmp_path / "hello_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[chat_shell.commands]\nhello = hello_plugin:register\n")
    return {"PYTHONPATH": str(tmp_path), "CHAT_SHELL_NO_PLUGINS": ""}


def test_plugin_commands_are_discovered(cli: Run, tmp_path: Path) -> None:
    env = _plugin(
        tmp_path,
        "import typer\n"
        "def register(app: typer.Typer) -> None:\n"
        "    @app.command()\n"
        "    def hello(name: str) -> None:\n"
        "        '''Say hello.'''\n"
        "        print(f'hello {name}')\n",
    )
    assert "hello" in cli("--help", extra_env=env).stdout
    result = cli("hello", "world", extra_env=env)
    assert result.returncode == 0
    assert result.stdout == "hello world\n"


def test_plugins_load_only_when_their_command_runs(cli: Run, tmp_path: Path) -> None:
    env = _plugin(tmp_path, "raise RuntimeError('boom')\n")
    listed = cli("--help", extra_env=env)  # listed by name, not imported
    assert listed.returncode == 0
    assert "hello" in listed.stdout
    assert listed.stderr == ""
    builtin = cli("config", "path", extra_env=env)
    assert builtin.returncode == 0
    assert builtin.stderr == ""
    broken = cli("hello", extra_env=env)
    assert broken.returncode == 2
    assert "'hello'" in broken.stderr
    assert "boom" in broken.stderr


@pytest.mark.parametrize("command", [["--help"], ["history"], ["config", "show"]])
def test_light_commands_do_not_import_heavy_modules(
    cli: Run, tmp_path: Path, command: list[str]
) -> None:
    listing = tmp_path / "modules.txt"
    result = cli(*command, extra_env={"CHAT_SHELL_PRINT_MODULES": str(listing)})
    assert result.returncode == 0, result.stderr
    modules = set(listing.read_text().split())
    assert "typer" in modules  # the listing works
    for heavy in ("litellm", "fastapi", "uvicorn", "httpx", "rich.markdown", "prompt_toolkit"):
        assert heavy not in modules, f"`chat-shell {' '.join(command)}` imported {heavy}"


def test_python_dash_m(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chat_shell_cli", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("chat-shell ")


@pytest.mark.slow
def test_docs_reference_is_the_real_help() -> None:
    """The CLI's own commands; chat-shell-http's tests check `serve`'s entry."""
    assert list(documented()) == [name_of(c) for c in [*COMMANDS, *PLUGIN_COMMANDS]]
    assert stale(COMMANDS) == [], "docs/cli.md is stale: run `python tests/cli/cli_docs.py`"


def test_exit_codes_are_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for line in ("| 0 |", "| 1 |", "| 2 |", "| 130 |"):
        assert line in doc


def test_console_script_exists() -> None:
    assert SCRIPT.exists()


def test_public_api() -> None:
    import chat_shell_cli

    assert chat_shell_cli.__all__ == sorted(chat_shell_cli.__all__)
    assert callable(chat_shell_cli.main)
    assert chat_shell_cli.main(["--version"]) == 0
