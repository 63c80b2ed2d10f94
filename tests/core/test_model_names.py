"""Model names: bare well-known names resolve as litellm resolves them, ollama/ goes to /api/chat,
reasoning models are told apart as litellm tells them, all without importing litellm."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from chat_shell import ModelRouter, Settings, UserError
from chat_shell._models.providers import bare_model_provider, is_openai_reasoning_model

# keys for every provider, so that resolving checks names only
ENV = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "GEMINI_API_KEY": "g"}


@pytest.mark.parametrize(
    ("name", "full", "sent"),
    [
        ("gpt-4", "openai/gpt-4", "gpt-4"),
        ("gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o-mini"),
        ("o3", "openai/o3", "o3"),
        ("o4-mini", "openai/o4-mini", "o4-mini"),
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ("gemini-2.5-pro", "vertex_ai/gemini-2.5-pro", "vertex_ai/gemini-2.5-pro"),
        ("openai/gpt-4o", "openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-x", "anthropic/claude-x", "anthropic/claude-x"),
        ("ollama/llama3.2", "ollama/llama3.2", "ollama_chat/llama3.2"),
        ("ollama_chat/llama3.2", "ollama_chat/llama3.2", "ollama_chat/llama3.2"),
    ],
)
def test_names_resolve(name: str, full: str, sent: str) -> None:
    spec = ModelRouter(Settings(), ENV).resolve(name)
    assert (spec.name, spec.provider_model) == (full, sent)


def test_per_model_config_applies_to_the_bare_and_the_full_name() -> None:
    for key in ("gpt-4o", "openai/gpt-4o"):
        settings = Settings.model_validate({"models": {key: {"api_base": "http://127.0.0.1:9/v1"}}})
        assert ModelRouter(settings, {}).resolve("gpt-4o").api_base == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("llama3.2", "has no provider prefix"),
        ("gpt-3.5-turbo-instruct", "has no provider prefix"),  # a text-completion model
        ("claude-sonnet-4-5-20250929-v1:0", "has no provider prefix"),  # a Bedrock id
        ("nosuch/model", "unknown model provider 'nosuch'"),
        ("openai/", "is not provider/model"),
        ("", "no model given"),
    ],
)
def test_names_that_cannot_be_resolved(name: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        ModelRouter(Settings(), ENV).full_name(name)


def test_full_name_follows_aliases_and_needs_no_credentials() -> None:
    router = ModelRouter(Settings(aliases={"fast": "gpt-4o-mini"}), {})
    assert router.full_name("fast") == "openai/gpt-4o-mini"
    assert router.full_name("claude-haiku-4-5") == "anthropic/claude-haiku-4-5"


@pytest.mark.parametrize(
    ("model", "reasoning"),
    [
        ("o1", True),
        ("o3-mini", True),
        ("o4-mini-2025-04-16", True),
        ("gpt-5", True),
        ("gpt-5.1", True),
        ("gpt-5-nano", True),
        ("azure/gpt-5-mini", True),
        ("gpt-5-chat-latest", False),
        ("gpt-4o", False),
        ("gpt-4.1-mini", False),
        ("ollama", False),
    ],
)
def test_reasoning_models(model: str, reasoning: bool) -> None:
    assert is_openai_reasoning_model(model) is reasoning


def _litellm(code: str) -> object:
    """Run ``code`` with litellm imported (offline) in a fresh interpreter; its JSON output."""
    prelude = (
        "import os, json; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\nimport litellm\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.litellm
def test_bare_names_resolve_as_litellm_resolves_them() -> None:
    """Every chat model litellm lists whose bare name our families match: litellm gives it the
    same provider (where it resolves it at all)."""
    pairs = _litellm(
        "out = []\n"
        "for name, info in litellm.model_cost.items():\n"
        "    if '/' in name or info.get('mode') != 'chat':\n"
        "        continue\n"
        "    try:\n"
        "        out.append([name, litellm.get_llm_provider(name)[1]])\n"
        "    except Exception:\n"
        "        out.append([name, None])\n"
        "print(json.dumps(out))"
    )
    assert isinstance(pairs, list)
    checked = 0
    for name, provider in pairs:
        ours = bare_model_provider(name)
        if ours is not None and provider is not None:
            assert ours == provider, name
            checked += 1
    assert checked > 100  # the OpenAI, Anthropic and Gemini families are all there
    resolved = dict(pairs)
    for name in ("gpt-4", "gpt-4o-mini", "o3", "claude-sonnet-4-5", "gemini-2.5-pro"):
        assert resolved[name] == bare_model_provider(name), name


@pytest.mark.litellm
def test_reasoning_models_are_litellm_s() -> None:
    """litellm's own rules (o-series config, gpt-5 config) over its OpenAI chat models."""
    pairs = _litellm(
        "from litellm.llms.openai.chat.gpt_reasoning_transformation import OpenAIGPT5Config\n"
        "o_series = litellm.OpenAIOSeriesConfig()\n"
        "print(json.dumps([[m, o_series.is_model_o_series_model(m)"
        " or OpenAIGPT5Config.is_model_gpt_5_model(m)]"
        " for m in sorted(litellm.open_ai_chat_completion_models)]))"
    )
    assert isinstance(pairs, list)
    assert len(pairs) > 50
    for model, reasoning in pairs:
        assert is_openai_reasoning_model(model) is reasoning, model
