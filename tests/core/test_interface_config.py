"""``InterfaceConfig`` means what it says: with ``settings=`` given, every value the config
states wins, and every value it leaves out comes from the settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chat_shell import (
    DirectChatInterface,
    InterfaceConfig,
    MemoryStorage,
    RunPlan,
    Settings,
    UserError,
    load_settings,
    tool,
)
from chat_shell.testing import FakeModel

SETTINGS_BASE = "http://127.0.0.1:9/settings"
MODELS = ("openai/config", "openai/settings", "openai/fallback-config", "openai/fallback-settings")


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return load_settings(
        tmp_path,
        environ={},
        read_file=False,
        models={
            name: {"api_base": SETTINGS_BASE, "api_key": "sk-settings-0001"} for name in MODELS
        },
        **values,
    )


def first_spec(plan: RunPlan) -> Any:
    return plan.models[0].spec


# field: (the config's value, the settings' own value (as settings keys), what the plan shows)
CASES: dict[str, tuple[Any, dict[str, Any], Any, Callable[[RunPlan], Any]]] = {
    "model": (
        "openai/config",
        {"model": "openai/settings"},
        "openai/settings",
        lambda plan: first_spec(plan).name,
    ),
    "fallback_models": (
        ["openai/fallback-config"],
        {"fallback_models": ["openai/fallback-settings"]},
        ["openai/fallback-settings"],
        lambda plan: [choice.spec.name for choice in plan.models[1:]],
    ),
    "api_base": (
        "http://127.0.0.1:9/config",
        {},
        SETTINGS_BASE,
        lambda plan: first_spec(plan).api_base,
    ),
    "api_key": (
        "sk-config-0001",
        {},
        "sk-settings-0001",
        lambda plan: first_spec(plan).api_key,
    ),
    "system_prompt": ("X", {"system_prompt": "Y"}, "Y", lambda plan: plan.system_prompt),
    "temperature": (0.25, {"temperature": 0.75}, 0.75, lambda plan: plan.temperature),
    "max_tokens": (11, {"max_tokens": 22}, 22, lambda plan: plan.max_tokens),
    "max_iterations": (3, {"max_iterations": 7}, 7, lambda plan: plan.max_iterations),
    "tool_timeout": (1.5, {"tool_timeout": 2.5}, 2.5, lambda plan: plan.tool_timeout),
    "run_timeout": (5.0, {"run_timeout": 9.0}, 9.0, lambda plan: plan.run_timeout),
    "retries": (1, {"retries": 4}, 4, lambda plan: plan.retries),
    "context": ("summarize", {"context": "off"}, "off", lambda plan: plan.context_mode),
}

# The interface's own fields: no setting stands for them (each has its test below).
OWN_FIELDS = {
    "token_budget",
    "tools",
    "approve",
    "storage",
    "storage_options",
    "home",
    "use_config_file",
    "use_environment",
    "toolsets",  # tests/mcp/test_mcp_agent.py
    "run_store",  # tests/core/test_runs_library.py
    "approval_timeout",  # tests/core/tools/test_tools_agent.py
}


def test_every_field_is_covered() -> None:
    fields = {field.name for field in dataclasses.fields(InterfaceConfig)}
    assert fields == set(CASES) | OWN_FIELDS


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_config_wins_over_the_settings(name: str, tmp_path: Path) -> None:
    explicit, setting, _, shown = CASES[name]
    settings = make_settings(tmp_path, **{"model": "openai/settings", **setting})
    config = InterfaceConfig(**{"model": "openai/config", name: explicit})
    interface = DirectChatInterface(config, settings=settings)
    assert shown(interface.plan("hi")) == explicit
    if name in Settings.model_fields and name != "model":
        assert getattr(interface.settings, name) == explicit
        assert interface.settings.sources[name] == "argument"
    assert settings.model == "openai/settings"  # the settings given are left as they were
    for key, value in setting.items():
        assert getattr(settings, key) == value


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_settings_fill_in_what_the_config_leaves_out(name: str, tmp_path: Path) -> None:
    _, setting, from_settings, shown = CASES[name]
    settings = make_settings(tmp_path, **{"model": "openai/settings", **setting})
    interface = DirectChatInterface(InterfaceConfig(), settings=settings)
    assert shown(interface.plan("hi")) == from_settings


def test_the_same_merge_without_settings_given(tmp_path: Path) -> None:
    """Loaded settings (here from config.toml) give way to the config the same way."""
    (tmp_path / "config.toml").write_text(
        'model = "openai/settings"\nsystem_prompt = "Y"\nmax_iterations = 7\n'
        '[models."openai/config"]\napi_key = "sk-file-0001"\n'
    )
    config = InterfaceConfig(
        model="openai/config", system_prompt="X", max_iterations=3, home=str(tmp_path)
    )
    plan = DirectChatInterface(config).plan("hi")
    assert (first_spec(plan).name, plan.system_prompt, plan.max_iterations) == (
        "openai/config",
        "X",
        3,
    )


def test_a_bad_value_is_a_user_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(UserError, match="max_iterations"):
        DirectChatInterface(InterfaceConfig(max_iterations=0), settings=settings)


def test_a_model_object_is_used_as_it_is(tmp_path: Path) -> None:
    model = FakeModel("hello")
    settings = make_settings(tmp_path, model="openai/settings")
    plan = DirectChatInterface(InterfaceConfig(model=model), settings=settings).plan("hi")
    assert plan.models[0].backend is model
    assert DirectChatInterface(InterfaceConfig(), settings=settings).settings.model == (
        "openai/settings"
    )


# -- the interface's own fields --------------------------------------------------------------


def test_token_budget(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, model="openai/settings")
    assert DirectChatInterface(InterfaceConfig(), settings=settings).plan("hi").token_budget is None
    config = InterfaceConfig(token_budget=500)
    assert DirectChatInterface(config, settings=settings).plan("hi").token_budget == 500


def test_tools(tmp_path: Path) -> None:
    @tool
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    settings = make_settings(tmp_path, model="openai/settings", tools=["calculator"])
    assert DirectChatInterface(InterfaceConfig(), settings=settings).plan("hi").tools == {}
    config = InterfaceConfig(tools=[shout, "calculator"])
    plan = DirectChatInterface(config, settings=settings).plan("hi")
    assert sorted(plan.tools) == ["calculator", "shout"]


def test_approve(tmp_path: Path) -> None:
    async def approve(name: str, arguments: dict[str, Any]) -> bool:
        return True

    settings = make_settings(tmp_path, model="openai/settings")
    assert DirectChatInterface(InterfaceConfig(), settings=settings).plan("hi").approve is None
    config = InterfaceConfig(approve=approve)
    assert DirectChatInterface(config, settings=settings).plan("hi").approve is approve


def test_storage_and_its_options(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, model="openai/settings", storage="json", storage_path=str(tmp_path / "s")
    )
    # The library keeps history in memory unless told otherwise, whatever the settings say.
    assert isinstance(DirectChatInterface(settings=settings).storage, MemoryStorage)
    given = MemoryStorage()
    assert DirectChatInterface(InterfaceConfig(storage=given), settings=settings).storage is given
    config = InterfaceConfig(storage="json", storage_options={"path": str(tmp_path / "c")})
    storage = DirectChatInterface(config, settings=settings).storage
    assert getattr(storage, "folder", None) == tmp_path / "c"


def test_home_and_the_sources_of_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``home``, ``use_config_file`` and ``use_environment`` say where settings are loaded from
    when none are given."""
    (tmp_path / "config.toml").write_text('model = "openai/from-file"\n')
    monkeypatch.setenv("CHAT_SHELL_SYSTEM_PROMPT", "from the environment")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-environment-0001")
    loaded = DirectChatInterface(InterfaceConfig(home=str(tmp_path)))
    assert (loaded.settings.model, loaded.settings.system_prompt) == (
        "openai/from-file",
        "from the environment",
    )
    no_file = DirectChatInterface(InterfaceConfig(home=str(tmp_path), use_config_file=False))
    assert no_file.settings.model == "openai/gpt-4o-mini"
    config = InterfaceConfig(home=str(tmp_path), use_environment=False)
    no_environment = DirectChatInterface(config)
    assert no_environment.settings.system_prompt is None
    # without the environment, OPENAI_API_KEY is not used either
    with pytest.raises(UserError, match="no API key for openai/from-file"):
        no_environment.plan("hi")
    # given settings are used as they are: the environment is not read again
    settings = make_settings(tmp_path, model="openai/settings")
    assert DirectChatInterface(settings=settings).settings.system_prompt is None
