"""What the terminal says about model trouble: a cut-off answer, the class of a failure, a
fallback left out, a model name that cannot be resolved (the real console script)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from chat_shell.testing import Recording, Reply, ScriptedModelServer
from cli_support import SCRIPT, Run


def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_a_cut_off_answer_says_so_in_one_line(cli: Run, server: ScriptedModelServer) -> None:
    server.add(Recording.sse(chunk({"content": "Once upon a"}), chunk({}, "length")))
    result = cli("query", "tell me a story")
    assert result.returncode == 1
    assert result.stdout.startswith("Once upon a")
    assert result.stderr.splitlines() == [
        "chat-shell: incomplete answer: the answer was cut off: the model reached its output "
        "token limit (max_tokens)"
    ]


@pytest.mark.parametrize(
    ("status", "tail"),
    [
        (401, "[authentication]"),
        (429, "[rate_limited, retryable]"),
        (503, "[unavailable, retryable]"),
        (400, "[bad_request]"),
    ],
)
def test_a_model_failure_names_its_class(
    cli: Run, server: ScriptedModelServer, status: int, tail: str
) -> None:
    server.add(Reply.error(status, "the provider's own words"))
    result = cli("query", "hi", extra_env={"CHAT_SHELL_RETRIES": "0"})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chat-shell: ")
    assert "the provider's own words" in lines[0]
    assert lines[0].endswith(tail)


def test_an_empty_answer_is_a_failure(cli: Run, server: ScriptedModelServer) -> None:
    server.add(Recording.sse())
    result = cli("query", "hi")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "chat-shell: openai/gpt-4o-mini: the model returned no output [no_output]"
    ]


@pytest.mark.parametrize("model", [None, "openai/gpt-4o-mini"])
def test_a_fallback_without_credentials_is_skipped_with_a_warning(
    cli: Run, model: str | None
) -> None:
    """The docs' own example: fallbacks openai/gpt-4o-mini, anthropic/claude-haiku-4-5, and
    no Anthropic key; every query still answers (with ``-m openai/…`` too)."""
    set_result = cli(
        "config", "set", "fallback_models", "openai/gpt-4o-mini,anthropic/claude-haiku-4-5"
    )
    assert set_result.returncode == 0, set_result.stderr
    args = ["query", "hi"] if model is None else ["query", "-m", model, "hi"]
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: hi"
    assert result.stderr.splitlines() == [
        "chat-shell: warning: fallback model anthropic/claude-haiku-4-5 skipped: no API key for "
        "anthropic/claude-haiku-4-5: set ANTHROPIC_API_KEY, or `chat-shell config set "
        "models.anthropic/claude-haiku-4-5.api_key KEY`"
    ]


def test_chat_warns_about_a_fallback_it_leaves_out(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(SCRIPT), "chat"],
        env={**env, "CHAT_SHELL_FALLBACK_MODELS": "anthropic/claude-haiku-4-5"},
        input="hello\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "echo: hello" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "chat-shell: warning: fallback model anthropic/claude-haiku-4-5 skipped: no API key for "
        "anthropic/claude-haiku-4-5: set ANTHROPIC_API_KEY, or `chat-shell config set "
        "models.anthropic/claude-haiku-4-5.api_key KEY`"
    ]


def test_config_set_model_takes_bare_names_and_refuses_what_it_cannot_resolve(
    cli: Run, home: Path
) -> None:
    for name in ("gpt-4", "o3", "claude-sonnet-4-5", "openai/my-local-model"):
        result = cli("config", "set", "model", name)
        assert result.returncode == 0, result.stderr
    assert cli("query", "-m", "gpt-4", "hi").stdout.strip() == "echo: hi"
    assert cli("config", "set", "aliases.fast", "gpt-4o-mini").returncode == 0
    assert cli("config", "set", "model", "fast").returncode == 0
    before = (home / "config.toml").read_text()
    for key, value, text in [
        ("model", "llama3.2", "model 'llama3.2' has no provider prefix"),
        ("model", "nosuch/model", "unknown model provider 'nosuch'"),
        ("fallback_models", "openai/x,mistrall", "model 'mistrall' has no provider prefix"),
        ("aliases.slow", "bogus", "model 'bogus' has no provider prefix"),
    ]:
        result = cli("config", "set", key, value)
        assert result.returncode == 2, (key, value, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert text in lines[0]
        assert lines[0].endswith("config.toml not changed")
    assert (home / "config.toml").read_text() == before
