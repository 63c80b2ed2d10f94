"""[server] secrets are masked by ``chat-shell config``; they are found in ServerSettings.

The CLI knows nothing of the server: it masks the options of ``[server]`` by their names. These
tests take every secret field of ``ServerSettings`` (``SecretStr``, also in lists) and check that
the name rule covers it and that no ``chat-shell config`` output shows its value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from chat_shell import load_settings
from chat_shell._config import is_secret_name
from chat_shell_http import ServerSettings
from secret_support import concrete, fill_secrets, leaked, new_secret, secret_paths

SCRIPT = Path(sys.executable).with_name("chat-shell")


def test_every_secret_of_the_server_is_named_like_one() -> None:
    paths = secret_paths(ServerSettings)
    assert ("api_keys",) in paths
    assert [path for path in paths if not is_secret_name(path[-1])] == []


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def server_secrets(home: Path) -> list[str]:
    """A config.toml whose [server] has a distinct secret in every secret field."""
    values, used = fill_secrets(ServerSettings)
    home.mkdir()
    (home / "config.toml").write_text(tomli_w.dumps({"server": values}))
    loaded = ServerSettings.from_settings(load_settings(home, environ={}), environ={})
    assert loaded.auth_enabled  # a configuration the server takes
    return used


def chat_shell(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_SHELL_")}
    env["CHAT_SHELL_HOME"] = str(home)
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_config_never_prints_a_server_secret(home: Path, server_secrets: list[str]) -> None:
    revealed = chat_shell(home, "config", "get", "server", "--reveal")
    assert leaked(revealed.stdout, server_secrets) == server_secrets  # they really are set
    keys = ["server", *(f"server.{concrete(path)}" for path in secret_paths(ServerSettings))]
    runs = {
        "show": chat_shell(home, "config", "show"),
        "show --json": chat_shell(home, "config", "show", "--json"),
        **{f"get {key}": chat_shell(home, "config", "get", key) for key in keys},
    }
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert leaked(result.stdout + result.stderr, server_secrets) == [], name
    shown = json.loads(runs["show --json"].stdout)["settings"]["server"]["value"]
    assert shown["api_keys"][0].endswith(server_secrets[0][-4:])  # masked, not dropped


def test_config_set_never_echoes_a_server_secret(home: Path, server_secrets: list[str]) -> None:
    for path in secret_paths(ServerSettings):
        fresh = [new_secret(), new_secret()]
        result = chat_shell(home, "config", "set", f"server.{concrete(path)}", json.dumps(fresh))
        assert result.returncode == 0, result.stderr
        assert leaked(result.stdout + result.stderr, [*fresh, *server_secrets]) == []
