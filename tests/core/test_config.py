"""Configuration precedence, validation and secret masking (design §8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_shell import UserError, load_settings
from chat_shell._config import mask_secret


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.model == "openai/gpt-4o-mini"
    assert settings.max_iterations == 10
    assert settings.sources["model"] == "default"


def test_argument_beats_environment_beats_file(tmp_path: Path) -> None:
    write_config(tmp_path, 'model = "anthropic/claude-from-file"\nmax_iterations = 4\n')
    env = {"CHAT_SHELL_MODEL": "ollama/from-env", "CHAT_SHELL_FALLBACK_MODELS": "a/x, b/y"}
    settings = load_settings(tmp_path, environ=env)
    assert settings.model == "ollama/from-env"
    assert settings.max_iterations == 4
    assert settings.fallback_models == ["a/x", "b/y"]
    assert settings.sources["model"] == "env CHAT_SHELL_MODEL"
    assert settings.sources["max_iterations"] == f"file {tmp_path / 'config.toml'}"
    explicit = load_settings(tmp_path, environ=env, model="openai/from-arg", max_iterations=None)
    assert explicit.model == "openai/from-arg"
    assert explicit.sources["model"] == "argument"
    assert explicit.max_iterations == 4  # None means "not given"


def test_per_model_tables(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[models."openai/local"]\napi_base = "http://127.0.0.1:8080/v1"\n'
        '[aliases]\nfast = "openai/local"\n',
    )
    settings = load_settings(tmp_path, environ={})
    assert settings.models["openai/local"].api_base == "http://127.0.0.1:8080/v1"
    assert settings.aliases == {"fast": "openai/local"}


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    write_config(tmp_path, "model = \n")
    with pytest.raises(UserError, match=r"config.toml is not valid TOML"):
        load_settings(tmp_path, environ={})


NOT_UTF8 = [
    pytest.param('model = "caf\xe9"\n'.encode("latin-1"), id="latin-1"),
    pytest.param(b'model = "\x80"\n', id="lone-continuation-byte"),
    pytest.param('model = "x"\n'.encode("utf-16"), id="utf-16"),
    pytest.param(b'model = "\xe2\x82', id="truncated-sequence"),
    pytest.param(b'model = "\xed\xa0\x80"\n', id="surrogate"),
    pytest.param(bytes(range(256)), id="binary"),
]


@pytest.mark.parametrize("content", NOT_UTF8)
def test_a_file_that_is_not_utf8_names_the_file(tmp_path: Path, content: bytes) -> None:
    tmp_path.joinpath("config.toml").write_bytes(content)
    with pytest.raises(UserError, match=r"config.toml is not UTF-8 text \(invalid byte at offset"):
        load_settings(tmp_path, environ={})


def test_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    write_config(tmp_path, 'modle = "x"\n')
    with pytest.raises(
        UserError, match=r"unknown key 'modle' \(known keys: model, fallback_models"
    ):
        load_settings(tmp_path, environ={})


def test_bad_value_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="env CHAT_SHELL_MAX_ITERATIONS"):
        load_settings(tmp_path, environ={"CHAT_SHELL_MAX_ITERATIONS": "many"})


def test_home_from_environment(tmp_path: Path) -> None:
    write_config(tmp_path, 'model = "gemini/gemini-2.0-flash"\n')
    assert (
        load_settings(environ={"CHAT_SHELL_HOME": str(tmp_path)}).model == "gemini/gemini-2.0-flash"
    )


def test_secrets_are_masked() -> None:
    assert mask_secret("sk-proj-abcdefghijklmnop") == "sk-…mnop"
    assert mask_secret("short") == "****"
    assert mask_secret(None) is None
