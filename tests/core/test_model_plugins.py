"""Model backends are plugins of the ``chat_shell.models`` entry-point group, core's own two
included; a backend's module is imported only when one of its models is chosen."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from chat_shell import DirectChatInterface, InterfaceConfig, ModelRouter, UserError, load_settings

BACKEND = '''
from chat_shell import FinishPart, ModelBackend, TextDelta, UsagePart

CALLS = []


class ShoutBackend(ModelBackend):
    """Answers with the last message in capitals, and says what it was sent."""

    closed = 0

    async def stream(self, request):
        CALLS.append(request)
        text = request.messages[-1]["content"].upper()
        yield TextDelta(f"{request.model}@{request.api_base}: {text}")
        yield FinishPart("stop")
        yield UsagePart({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})

    async def aclose(self):
        ShoutBackend.closed += 1


def not_a_backend():
    return object()
'''


def distribution(folder: Path, entry_points_txt: str) -> Path:
    """A distribution in ``folder`` (put it on sys.path) with ``shout_backend`` and these
    entry points."""
    info = folder / "shout_backend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points_txt))
    (folder / "shout_backend.py").write_text(textwrap.dedent(BACKEND))
    return folder


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = distribution(
        tmp_path / "plugin",
        """
        [chat_shell.models]
        shout = shout_backend:ShoutBackend
        hollow = shout_backend:not_a_backend
        broken = no_such_module_xyz:Backend
        """,
    )
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("shout_backend", None)


def settings(tmp_path: Path, **values: object) -> object:
    return load_settings(tmp_path, environ={}, read_file=False, **values)


def test_the_built_in_backends_are_entry_points() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="chat_shell.models")}
    assert found["openai"] == "chat_shell._models.openai_backend:OpenAIBackend"
    assert found["litellm"] == "chat_shell._models.litellm_backend:LiteLLMBackend"


async def test_a_third_party_backend_serves_its_provider(plugin: Path, tmp_path: Path) -> None:
    import shout_backend  # type: ignore[import-not-found]  # written by the fixture

    config = InterfaceConfig(model="shout/loud", use_config_file=False, use_environment=False)
    shown = settings(
        tmp_path,
        model="openai/unused",
        models={"shout/loud": {"api_base": "http://127.0.0.1:9/shout"}},
    )
    async with DirectChatInterface(config, settings=shown) as chat:  # type: ignore[arg-type]
        output = await chat.chat("hello")
        again = await chat.chat("twice")
    assert output.status == "completed", output.error
    assert output.content == "loud@http://127.0.0.1:9/shout: HELLO"
    assert output.model == "shout/loud"
    assert again.content.endswith("TWICE")
    assert len(shout_backend.CALLS) == 2
    assert shout_backend.ShoutBackend.closed == 1  # one backend, shared, closed at shutdown


def test_the_name_is_checked_against_the_plugins(plugin: Path, tmp_path: Path) -> None:
    router = ModelRouter(settings(tmp_path), environ={})  # type: ignore[arg-type]
    assert router.full_name("shout/x") == "shout/x"
    with pytest.raises(UserError, match=r"unknown model provider 'nope'.*plugin's: .*shout"):
        router.full_name("nope/x")


def test_a_plugin_that_fails_to_load_says_so(plugin: Path, tmp_path: Path) -> None:
    router = ModelRouter(settings(tmp_path), environ={})  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"model backend 'broken' .*failed to load"):
        router.backend(router.resolve("broken/x"))
    with pytest.raises(UserError, match="model plugin 'hollow' did not return a ModelBackend"):
        router.backend(router.resolve("hollow/x"))


def test_a_plugin_can_take_over_a_litellm_provider(tmp_path: Path) -> None:
    folder = distribution(
        tmp_path / "plugin", "[chat_shell.models]\nanthropic = shout_backend:ShoutBackend\n"
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(folder)!r})
        from chat_shell import ModelRouter, load_settings

        router = ModelRouter(load_settings(environ={{}}, read_file=False), environ={{}})
        spec = router.resolve("anthropic/claude-x")  # no key needed: the plugin's provider
        backend = router.backend(spec)
        print(type(backend).__name__, spec.provider_model)
        print("chat_shell._models.litellm_backend" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == ["ShoutBackend claude-x", "False"]


def test_looking_up_a_backend_imports_only_the_chosen_one() -> None:
    """Choosing openai/… or a plugin's model imports neither litellm nor its backend; choosing
    anthropic/… loads the litellm backend but not litellm (until a call is made)."""
    script = textwrap.dedent(
        """
        import sys
        from chat_shell import ModelRouter, UserError, load_settings

        environ = {"OPENAI_API_KEY": "sk-test-0001", "ANTHROPIC_API_KEY": "sk-ant-test"}
        router = ModelRouter(load_settings(environ={}, read_file=False), environ=environ)
        router.backend(router.resolve("openai/gpt-4o-mini"))
        print("chat_shell._models.litellm_backend" in sys.modules, "litellm" in sys.modules)
        try:
            router.backend(router.resolve("anthropic/claude-x"))
        except UserError as exc:  # litellm not installed (core alone): the install hint
            assert "pip install 'chat-shell-core[litellm]'" in exc.message
        print("chat_shell._models.litellm_backend" in sys.modules, "litellm" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == ["False False", "True False"]
