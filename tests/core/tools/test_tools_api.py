"""The Tool API: schema from hints and docstrings, the decorator, validation, the registry."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from typing import Any, Literal

import chat_shell
import pytest
from chat_shell import (
    DirectChatInterface,
    InterfaceConfig,
    Settings,
    Tool,
    ToolError,
    ToolRegistry,
    UserError,
    tool,
)


def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def test_schema_from_hints_defaults_and_docstring() -> None:
    made = Tool(add)
    assert made.schema() == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "description": "the first number", "title": "A"},
                    "b": {
                        "type": "integer",
                        "default": 2,
                        "description": "the second number",
                        "title": "B",
                    },
                },
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    }


def test_decorator_forms() -> None:
    @tool
    def plain(x: str) -> str:
        """Plain."""
        return x

    @tool(name="renamed", timeout=3, requires_approval=True, max_output_chars=10)
    async def configured(mode: Literal["a", "b"] = "a") -> str:
        """Configured."""
        return mode

    assert isinstance(plain, Tool)
    assert plain.name == "plain"
    assert plain("direct") == "direct"  # still callable as the function
    assert configured.name == "renamed"
    assert configured.timeout == 3
    assert configured.requires_approval
    assert configured.is_async
    assert configured.parameters["properties"]["mode"]["enum"] == ["a", "b"]


async def test_sync_and_async_results_are_serialised() -> None:
    @tool
    async def data() -> dict[str, Any]:
        """Some data."""
        return {"b": [1, 2], "a": "é"}

    assert json.loads(await data.run({})) == {"b": [1, 2], "a": "é"}
    assert await Tool(add).run({"a": 1}) == "3"
    assert await Tool(add).run({"a": "4", "b": 1}) == "5"  # lax coercion, as pydantic does


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "a: Field required"),
        ({"a": "x"}, "a: Input should be a valid integer"),
        ({"a": 1, "c": 3}, "c: Extra inputs are not permitted"),
    ],
)
async def test_validation_failures_are_tool_errors(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolError, match="invalid arguments for add") as caught:
        await Tool(add).run(arguments)
    assert problem in caught.value.message


def test_bad_tools_are_user_errors() -> None:
    def varargs(*args: int) -> None:
        """No."""

    with pytest.raises(UserError, match=r"\*args"):
        Tool(varargs)
    with pytest.raises(UserError, match="invalid tool name"):
        Tool(add, name="has space")
    with pytest.raises(UserError, match="timeout"):
        Tool(add, timeout=0)


def test_registry_register_get_names_select() -> None:
    registry = ToolRegistry([add])
    registry.register(lambda: "hi", name="greet")
    assert registry.names() == ["add", "greet"]
    assert "add" in registry
    assert len(registry) == 2
    assert registry.get("add").name == "add"
    assert list(registry.select(["greet", "add"])) == ["greet", "add"]
    assert list(registry.select()) == ["add", "greet"]
    with pytest.raises(UserError, match=r"unknown tools nope \(available: add, greet\)"):
        registry.select(["add", "nope"])
    with pytest.raises(UserError, match="unknown tool 'nope'"):
        registry.get("nope")
    with pytest.raises(UserError, match="already registered"):
        registry.register(add)
    registry.register(Tool(add), replace=True)


def test_factories_run_lazily_and_unavailable_ones_are_left_out() -> None:
    calls: list[Settings] = []

    def factory(settings: Settings) -> Tool:
        calls.append(settings)
        return Tool(add, name="lazy")

    def unavailable(settings: Settings) -> Tool:
        raise UserError("set something first")

    settings = Settings()
    registry = ToolRegistry(settings=settings)
    registry.register_factory("lazy", factory)
    registry.register_factory("off", unavailable)
    assert registry.names() == ["lazy", "off"]
    assert calls == []
    assert list(registry.select()) == ["lazy"]
    assert calls == [settings]
    with pytest.raises(UserError, match="set something first"):
        registry.select(["off"])


def test_default_registry_has_the_builtins_through_entry_points() -> None:
    registry = ToolRegistry.default(Settings())
    assert {
        "calculator",
        "current_time",
        "fetch_url",
        "read_file",
        "list_files",
        "web_search",
    } <= set(registry.names())
    assert set(registry.select()) >= {"calculator", "current_time", "fetch_url"}


def test_third_party_tools_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    points = [
        EntryPoint("add", "test_tools_api:plugin_tool", "chat_shell.tools"),
        EntryPoint("made", "test_tools_api:plugin_factory", "chat_shell.tools"),
        EntryPoint("broken", "no_such_module_xyz:thing", "chat_shell.tools"),
        EntryPoint("wrong", "test_tools_api:plugin_tool", "chat_shell.tools"),
    ]

    def fake_entry_points(**selection: Any) -> list[EntryPoint]:
        assert selection == {"group": "chat_shell.tools"}
        return points

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry = ToolRegistry.default(Settings(file_root="/somewhere"))
    assert registry.names() == ["add", "broken", "made", "wrong"]
    assert registry.get("add") is plugin_tool
    assert registry.get("made").description == "file root: /somewhere"
    with pytest.raises(UserError, match="failed to load"):
        registry.get("broken")
    with pytest.raises(UserError, match="gave a tool named 'add'"):
        registry.get("wrong")
    assert set(registry.select()) == {"add", "made"}


plugin_tool = Tool(add)


def plugin_factory(settings: Settings) -> Tool:
    return Tool(add, name="made", description=f"file root: {settings.file_root}")


def test_interface_accepts_names_objects_and_functions() -> None:
    config = InterfaceConfig(
        tools=["calculator", add, Tool(add, name="add2")],
        use_config_file=False,
        use_environment=False,
    )
    chat = DirectChatInterface(config)
    assert list(chat.tools) == ["calculator", "add", "add2"]
    with pytest.raises(UserError, match="unknown tool 'nope'"):
        DirectChatInterface(InterfaceConfig(tools=["nope"], use_config_file=False))
    with pytest.raises(UserError, match="file_root"):
        DirectChatInterface(
            InterfaceConfig(tools=["read_file"], use_config_file=False, use_environment=False)
        )


def test_public_names() -> None:
    for name in ("Tool", "ToolRegistry", "tool"):
        assert name in chat_shell.__all__
    import chat_shell.tools as builtins

    for name in builtins.__all__:
        assert getattr(builtins, name) is not None
    assert builtins.fetch_url.name == "fetch_url"


def test_settings_for_tools_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from chat_shell import load_settings
    from chat_shell._config import mask_secret

    environ = {
        "CHAT_SHELL_FILE_ROOT": "/data",
        "CHAT_SHELL_SEARCH_BACKEND": "brave",
        "CHAT_SHELL_BRAVE_API_KEY": "BSA-0123456789abcdef",
        "CHAT_SHELL_SEARCH_RATE_PER_MINUTE": "3",
    }
    settings = load_settings(environ=environ, read_file=False)
    assert settings.file_root == "/data"
    assert settings.search_backend == "brave"
    assert settings.search_rate_per_minute == 3
    assert "BSA-0123456789abcdef" not in repr(settings)
    assert mask_secret(settings.brave_api_key) == "BSA…cdef"
    field = Settings.model_fields["brave_api_key"]
    assert field.json_schema_extra == {"secret": True}
