"""Secrets in settings: found in the models, masked in every form the settings are shown."""

from __future__ import annotations

import json
from typing import Any

from chat_shell import ModelConfig, Settings
from chat_shell._config import is_secret_name, mask_secret
from secret_support import ANY_NAME, field_paths, fill_secrets, leaked, new_secret, secret_paths

# Free-form options of [server] (its model lives in chat-shell-http) that name a secret.
SERVER_SECRETS = ("api_keys", "api_key_hashes", "admin_token", "password")


def test_the_settings_models_declare_their_secrets() -> None:
    assert set(secret_paths(Settings)) >= {
        ("storage_api_key",),
        ("brave_api_key",),
        ("tavily_api_key",),
        ("models", ANY_NAME, "api_key"),
    }
    assert secret_paths(ModelConfig) == [("api_key",)]


def test_every_field_named_like_a_secret_is_declared_one() -> None:
    named = [path for path, _, _ in field_paths(Settings) if is_secret_name(path[-1])]
    assert named  # the rule finds the api keys
    assert [path for path in named if path not in secret_paths(Settings)] == []


def test_secret_names() -> None:
    for name in ("api_keys", "api_key", "admin-token", "db_password", "signing_secret", "KEY"):
        assert is_secret_name(name), name
    for name in ("host", "port", "keepalive_seconds", "monkey", "tokenizer", "max_tokens"):
        assert not is_secret_name(name), name


def settings_full_of_secrets() -> tuple[Settings, list[str]]:
    values, used = fill_secrets(Settings)
    server: dict[str, Any] = {"host": "127.0.0.1", "port": 8123}
    for name in SERVER_SECRETS:
        server[name] = [new_secret(), new_secret()] if name.endswith("s") else new_secret()
        used += server[name] if isinstance(server[name], list) else [server[name]]
    server["tls"] = {"certificate": "/etc/cert.pem", "key": new_secret()}
    used.append(server["tls"]["key"])
    values["server"] = server
    values["aliases"] = {"key": "openai/gpt-4o-mini"}  # an alias is a name, not a secret
    return Settings.model_validate(values), used


def test_masked_settings_hold_no_secret_and_keep_everything_else() -> None:
    settings, used = settings_full_of_secrets()
    plain = settings.model_dump(mode="json")
    assert leaked(json.dumps(plain), used) == used  # they are all in there
    masked = settings.masked()
    assert leaked(json.dumps(masked, ensure_ascii=False), used) == []
    # masked, not dropped: the last characters still tell which one is set
    assert masked["brave_api_key"] == mask_secret(plain["brave_api_key"])
    assert masked["server"]["api_keys"] == [mask_secret(k) for k in plain["server"]["api_keys"]]
    assert masked["server"]["tls"] == {
        "certificate": "/etc/cert.pem",
        "key": mask_secret(plain["server"]["tls"]["key"]),
    }
    # everything that is not a secret is shown as it is
    for key in ("model", "aliases", "retries", "file_max_bytes"):
        assert masked[key] == plain[key]
    assert masked["server"]["host"] == "127.0.0.1"
    assert masked["server"]["port"] == 8123
    model = masked["models"]["openai/test-model"]
    assert {k: v for k, v in model.items() if k != "api_key"} == {
        k: v for k, v in plain["models"]["openai/test-model"].items() if k != "api_key"
    }


def test_repr_and_str_hold_no_secret() -> None:
    settings, used = settings_full_of_secrets()
    for text in (repr(settings), str(settings), repr(settings.models), f"{settings!r}"):
        assert leaked(text, used) == []
    assert "api_keys" in repr(settings)  # the table is still shown, masked
