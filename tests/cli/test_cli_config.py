"""``chat-shell config`` and ``chat-shell models``."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest
from cli_support import Run


def test_init_creates_a_private_commented_home(cli: Run, home: Path) -> None:
    result = cli("config", "init")
    assert result.returncode == 0, result.stderr
    config = home / "config.toml"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert "# model = " in text
    assert "# [aliases]" in text
    assert tomllib.loads(text) == {}  # everything commented out
    again = cli("config", "init")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert config.read_text() == text


def test_init_elsewhere(cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    result = cli("config", "init", str(target))
    assert result.returncode == 0
    assert (target / "config.toml").exists()
    assert f"CHAT_SHELL_HOME={target}" in result.stdout


@pytest.mark.slow
def test_set_get_unset(cli: Run, home: Path) -> None:
    cli("config", "init")
    assert cli("config", "set", "temperature", "0.2").returncode == 0
    assert cli("config", "set", "fallback_models", "openai/a, openai/b").returncode == 0
    assert cli("config", "set", "aliases.fast", "openai/gpt-4.1").returncode == 0
    secret = "sk-very-secret-value-9876"
    result = cli("config", "set", "models.openai/gpt-4.1.api_key", secret)
    assert result.returncode == 0
    assert secret not in result.stdout
    config = home / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    values = tomllib.loads(config.read_text())
    assert values == {
        "temperature": 0.2,
        "fallback_models": ["openai/a", "openai/b"],
        "aliases": {"fast": "openai/gpt-4.1"},
        "models": {"openai/gpt-4.1": {"api_key": secret}},
    }
    assert config.read_text().startswith("# chat-shell configuration")  # comments kept
    assert cli("config", "get", "temperature").stdout == "0.2\n"
    assert cli("config", "get", "aliases.fast").stdout == "openai/gpt-4.1\n"
    masked = cli("config", "get", "models.openai/gpt-4.1.api_key").stdout
    assert secret not in masked
    assert masked.strip().endswith("9876")
    assert cli("config", "get", "models.openai/gpt-4.1.api_key", "--reveal").stdout == secret + "\n"
    assert cli("config", "unset", "aliases.fast").returncode == 0
    assert "aliases" not in tomllib.loads(config.read_text())


def test_show_masks_secrets_and_names_sources(cli: Run) -> None:
    cli("config", "set", "storage_api_key", "abcdefghijklmnopqrstuvwxyz")
    result = cli("config", "show", extra_env={"CHAT_SHELL_MODEL": "openai/from-env"})
    assert result.returncode == 0, result.stderr
    assert "abcdefghijklmnopqrstuvwxyz" not in result.stdout
    data = json.loads(
        cli("config", "show", "--json", extra_env={"CHAT_SHELL_MODEL": "openai/x"}).stdout
    )["settings"]
    assert data["model"] == {"value": "openai/x", "source": "env CHAT_SHELL_MODEL"}
    assert data["storage_api_key"]["value"] == "abc…wxyz"
    assert data["storage_api_key"]["source"].startswith("file ")
    assert data["retries"]["source"] == "default"


@pytest.mark.slow
def test_bad_config_input_changes_nothing(cli: Run, home: Path) -> None:
    cli("config", "set", "model", "openai/gpt-4o-mini")
    config = home / "config.toml"
    before = config.read_text()
    for args, text in [
        (("config", "set", "bogus", "1"), "unknown key 'bogus' (known keys: model, "),
        (("config", "set", "temperature", "7"), "temperature"),
        (("config", "set", "max_iterations", "many"), "max_iterations"),
        (("config", "get", "nope"), "unknown key"),
        (("config", "set", "models.openai/x.colour", "red"), "api_key"),
    ]:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert text in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert config.read_text() == before


@pytest.mark.slow
def test_broken_config_file(cli: Run, home: Path) -> None:
    home.mkdir()
    config = home / "config.toml"
    config.write_text("model = [unclosed\n")
    for args in (
        ("config", "show"),
        ("history",),
        ("query", "hi"),
        ("config", "set", "model", "x/y"),
    ):
        result = cli(*args)
        assert result.returncode == 2, args
        assert "not valid TOML" in result.stderr
        assert "Traceback" not in result.stderr
    assert config.read_text() == "model = [unclosed\n"
    config.write_text('colour = "red"\n')
    result = cli("config", "show")
    assert result.returncode == 2
    assert "unknown key 'colour'" in result.stderr
    config.unlink()
    config.mkdir()  # unreadable as a file, even for root
    result = cli("config", "show")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_config_file_not_utf8(cli: Run, home: Path) -> None:
    home.mkdir()
    config = home / "config.toml"
    content = 'model = "openai/caf\xe9"\n'.encode("latin-1")
    config.write_bytes(content)
    for args in (("config", "show"), ("history",), ("query", "hi"), ("models",)):
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert str(config) in result.stderr
        assert "not UTF-8" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert config.read_bytes() == content


def test_path(cli: Run, home: Path) -> None:
    assert cli("config", "path").stdout.strip() == str(home / "config.toml")


@pytest.mark.slow
def test_models_never_prints_keys(cli: Run) -> None:
    secret = "sk-config-secret-000111"
    cli("config", "set", "models.openai/gpt-4.1.api_key", secret)
    cli("config", "set", "aliases.smart", "openai/gpt-4.1")
    result = cli("models", extra_env={"ANTHROPIC_API_KEY": "sk-ant-secret-222333"})
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout
    assert "sk-ant-secret" not in result.stdout
    assert "smart → openai/gpt-4.1" in result.stdout
    data = json.loads(cli("models", "--json", extra_env={"ANTHROPIC_API_KEY": "k"}).stdout)
    assert data["default"] == "openai/gpt-4o-mini"
    assert data["credentials"]["anthropic"]["present"] is True
    assert data["credentials"]["openai"]["present"] is True
    assert data["models"]["openai/gpt-4.1"]["ready"] is True
