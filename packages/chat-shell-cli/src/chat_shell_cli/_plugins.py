"""Commands from other distributions, found through the ``chat_shell.commands`` entry points.

Each entry point loads a callable ``register(app: typer.Typer) -> None`` that adds its commands.
A plugin that fails to load is reported in one line and left out; the rest of the CLI works.
``CHAT_SHELL_NO_PLUGINS=1`` skips them all.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

COMMANDS_GROUP = "chat_shell.commands"

# Commands we know a distribution provides: named without it, we say what to install.
KNOWN_COMMANDS = {"serve": ("the HTTP server", "chat-shell-http")}


def register_plugins(
    app: typer.Typer, invoked: str | None = None, builtin: frozenset[str] = frozenset()
) -> None:
    """Add the plugins' commands.

    Loading a plugin may import a lot (a web framework), so it is loaded only when one of its
    commands may run: for a built-in command nothing is loaded; for the top-level help each
    plugin is listed by its entry-point name without loading it.
    """
    if os.environ.get("CHAT_SHELL_NO_PLUGINS", "") not in ("", "0") or invoked in builtin:
        return
    from importlib.metadata import entry_points

    found = list(entry_points(group=COMMANDS_GROUP))
    completing = bool(os.environ.get("_CHAT_SHELL_COMPLETE"))
    if invoked is None and not completing:
        for entry_point in found:
            if entry_point.name not in builtin:
                _placeholder(app, entry_point.name, entry_point.dist)
        return
    chosen = [ep for ep in found if ep.name == invoked] or found
    for entry_point in chosen:
        try:
            register = entry_point.load()
            register(app)
        except Exception as exc:
            print(
                f"chat-shell: the command plugin {entry_point.name!r} ({entry_point.value}) "
                f"failed to load and is left out: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


def _placeholder(app: typer.Typer, name: str, dist: Any) -> None:
    source = f"from {dist.name}" if dist is not None else "a plugin"
    help_text = f"({source}) see: chat-shell {name} --help"

    def placeholder() -> None:  # listed only; a run loads the real command
        pass

    app.command(name, help=help_text, add_help_option=False)(placeholder)


def command_names(app: typer.Typer) -> set[str]:
    names = set()
    for info in app.registered_commands:
        callback_name = getattr(info.callback, "__name__", "")
        names.add(info.name or callback_name.lower().replace("_", "-"))
    for group in app.registered_groups:
        if group.name:
            names.add(group.name)
    return names


def add_missing_commands(app: typer.Typer) -> None:
    """A hidden stand-in for each known command no plugin provided, saying what to install."""
    from ._exit import CLIError

    present = command_names(app)
    for name, (what, distribution) in KNOWN_COMMANDS.items():
        if name in present:
            continue
        message = f"chat-shell {name} needs {what}: pip install {distribution}"

        def missing(message: str = message) -> None:
            raise CLIError(message)

        app.command(
            name,
            hidden=True,
            add_help_option=False,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(missing)
