"""No output of ``chat-shell config`` or ``chat-shell models`` shows a secret.

The secrets are found in the settings models (``secret_support``), so a secret setting added later
is checked here without being listed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import tomli_w
from chat_shell import ModelConfig, Settings
from cli_support import Run
from secret_support import concrete, fill_secrets, leaked, new_secret, secret_paths

MODEL = "openai/test-model"


@pytest.fixture
def secrets_in_config(home: Path) -> tuple[list[str], list[str]]:
    """A config.toml with a distinct secret in every secret setting, and some in [server]:
    (the settings' secrets, [server]'s)."""
    values, used = fill_secrets(Settings, MODEL)
    values.setdefault("models", {}).setdefault(MODEL, {})["api_base"] = "http://127.0.0.1:9/v1"
    server_secrets = [new_secret(), new_secret(), new_secret()]
    values["server"] = {
        "port": 8123,
        "api_keys": server_secrets[:2],
        "admin_token": server_secrets[2],
    }
    home.mkdir()
    (home / "config.toml").write_text(tomli_w.dumps(values))
    return used, server_secrets


def outputs(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.mark.slow
def test_config_show_get_and_models_never_print_a_secret(
    cli: Run, secrets_in_config: tuple[list[str], list[str]]
) -> None:
    settings_secrets, server_secrets = secrets_in_config
    used = settings_secrets + server_secrets
    # the secrets really are set: --reveal prints them
    for path in secret_paths(Settings):
        revealed = cli("config", "get", concrete(path, MODEL), "--reveal").stdout
        assert len(leaked(revealed, settings_secrets)) == 1, path
    assert leaked(cli("config", "get", "server", "--reveal").stdout, used) == server_secrets

    keys = [
        *(concrete(path, MODEL) for path in secret_paths(Settings)),
        *(f"models.{MODEL}.{field}" for field in ModelConfig.model_fields),
        "models",
        "server",
        "server.api_keys",
        "server.admin_token",
        "server.port",
        "aliases",
    ]
    runs = {
        "show": cli("config", "show"),
        "show --json": cli("config", "show", "--json"),
        "models": cli("models"),
        "models --json": cli("models", "--json"),
        **{f"get {key}": cli("config", "get", key) for key in keys},
    }
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert leaked(outputs(result), used) == [], name

    shown = json.loads(runs["show --json"].stdout)["settings"]
    assert shown["server"]["value"]["port"] == 8123
    assert shown["server"]["value"]["api_keys"][0].endswith(server_secrets[0][-4:])  # masked
    assert runs["get server.api_keys"].stdout.count("…") == 2
    assert runs["get server.port"].stdout == "8123\n"


@pytest.mark.slow
def test_config_set_never_echoes_a_secret(
    cli: Run, secrets_in_config: tuple[list[str], list[str]]
) -> None:
    fresh = {concrete(path, MODEL): new_secret() for path in secret_paths(Settings)}
    keys = [new_secret(), new_secret()]
    token = new_secret()
    settings = {**fresh, "server.api_keys": json.dumps(keys), "server.admin_token": token}
    for key, value in settings.items():
        result = cli("config", "set", key, value)
        assert result.returncode == 0, (key, result.stderr)
        assert leaked(outputs(result), [*fresh.values(), *keys, token]) == [], key
        assert result.stdout.startswith(f"{key} = ")


@pytest.mark.parametrize(
    "args",
    [
        ("set", "temperature", "{secret}"),  # a secret pasted into the wrong setting
        ("set", "search_backend", "{secret}"),
        ("set", f"models.{MODEL}.max_tokens", "{secret}"),
        ("set", "server", "{secret}"),
        ("set", "brave_api_keys", "{secret}"),  # a misspelt secret setting
        ("set", f"models.{MODEL}.api_keys", "{secret}"),
        ("set", "brave_api_key={secret}", "x"),  # '=' instead of a space
        ("set", f"models.{MODEL}.api_key={{secret}}", "x"),
        ("set", "server.api_keys=[{secret}]", "x"),
        ("get", "brave_api_key={secret}"),
        ("unset", "storage_api_key={secret}"),
    ],
)
def test_config_commands_with_a_bad_value_do_not_echo_it(
    cli: Run, home: Path, secrets_in_config: tuple[list[str], list[str]], args: tuple[str, ...]
) -> None:
    secret = new_secret()
    before = (home / "config.toml").read_text()
    result = cli("config", *(part.replace("{secret}", secret) for part in args))
    assert result.returncode == 2, (args, result.stdout)
    assert leaked(outputs(result), [secret, *secrets_in_config[0], *secrets_in_config[1]]) == []
    assert (home / "config.toml").read_text() == before


@pytest.mark.slow
def test_a_bad_config_file_is_refused_without_showing_its_secrets(cli: Run, home: Path) -> None:
    secret = new_secret()
    home.mkdir()
    config = home / "config.toml"
    for text in (
        f'temperature = "{secret}"\n',
        f'brave_api_key = ["{secret}"]\n',
        f'[models."openai/x"]\napi_key = "{secret}"\ncolour = "{secret}"\n',
        f'search_backend = "{secret}"\n',
        f'brave_api_key = "{secret}\n',  # not TOML
    ):
        config.write_text(text)
        result = cli("config", "show")  # every command reads the file the same way
        assert result.returncode == 2, text
        assert secret not in outputs(result), text
