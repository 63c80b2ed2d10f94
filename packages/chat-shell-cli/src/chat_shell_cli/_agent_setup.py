"""Building the agent for ``chat`` and ``query``: tools, storage, interface; judging a turn."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._exit import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, CLIError, exit_code_for_error
from ._runtime import make_storage

if TYPE_CHECKING:
    from chat_shell import (
        ApprovalCallback,
        ChatOutput,
        DirectChatInterface,
        Settings,
        StorageProvider,
        StreamingChatOutput,
        Tool,
        ToolRegistry,
        Toolset,
    )


def select_tools(
    settings: Settings, names: list[str] | None, no_tools: bool
) -> tuple[list[Tool], list[Toolset]]:
    """``--tool`` names, else the configured ``tools``, else every tool usable with these
    settings; none with ``--no-tools``. Also the toolsets (MCP servers) with something
    configured: names the registry does not know are left to them (checked once they are open,
    by ``check_requested``); a toolset none of the names is for is left out, unstarted."""
    if no_tools:
        return [], []
    from chat_shell import ToolRegistry, Toolset

    registry = ToolRegistry.default(settings)
    allow = names or settings.tools
    toolsets = Toolset.installed(settings)
    if (settings.mcp_servers or settings.mcp_config) and not any(
        toolset.name == "mcp" for toolset in toolsets
    ):
        import importlib.util
        import sys

        if importlib.util.find_spec("chat_shell_mcp") is None:
            print(
                "chat-shell: warning: MCP servers are configured but chat-shell-mcp is not "
                "installed (pip install chat-shell-mcp); their tools are left out",
                file=sys.stderr,
            )
    others = [name for name in dict.fromkeys(allow or ()) if name not in registry]
    if others and not toolsets:
        where = "" if names else " in the `tools` setting"
        raise CLIError(f"{_unknown_tools(others)}{where}: {_tool_choices(registry)}")
    if allow is not None:
        for toolset in toolsets:
            toolset.allow = others
        toolsets = [toolset for toolset in toolsets if others]
        allow = [name for name in allow if name in registry]
    return list(registry.select(allow).values()), toolsets


def check_requested(
    settings: Settings, names: list[str] | None, interface: DirectChatInterface
) -> None:
    """After the toolsets opened: every name asked for (not a pattern) is a tool now."""
    allow = names or settings.tools
    if allow is None:
        return
    available = interface.available_tools()
    missing = [
        name
        for name in dict.fromkeys(allow)
        if name not in available and not any(ch in name for ch in "*?[")
    ]
    if missing:
        where = "" if names else " in the `tools` setting"
        known = ", ".join(sorted(available)) or "none"
        raise CLIError(f"{_unknown_tools(missing)}{where} (available: {known})")


def toolset_warnings(interface: DirectChatInterface) -> list[str]:
    """What the toolsets could not offer (a server that did not start), one line each."""
    return [warning for toolset in interface.config.toolsets for warning in toolset.warnings]


def _unknown_tools(names: list[str]) -> str:
    quoted = ", ".join(repr(name) for name in names)
    return f"unknown tool {quoted}" if len(names) == 1 else f"unknown tools {quoted}"


def _tool_choices(registry: ToolRegistry) -> str:
    """Which tools can be used as configured, and which need a setting first."""
    available = list(registry.select(None))
    off = [name for name in registry.names() if name not in available]
    text = f"available: {', '.join(available) or 'none'}"
    if off:
        text += f"; off until configured (-t NAME says what it needs): {', '.join(off)}"
    return text


def make_interface(
    settings: Settings,
    tools: tuple[list[Tool], list[Toolset]],
    *,
    approve: ApprovalCallback | None,
    storage: StorageProvider | None = None,
) -> DirectChatInterface:
    import logging

    from chat_shell import DirectChatInterface, InterfaceConfig

    # The library's operator log lines (a failed model call, retried) are not for the terminal:
    # the run's events and the one closing line say what happened.
    library = logging.getLogger("chat_shell")
    if not library.handlers:
        library.addHandler(logging.NullHandler())
    # Runs go through the run store of the configured storage (for sqlite: the same file), so
    # a CLI turn, a server and the library never run two turns of one session at once. A
    # storage given here (a --no-store turn's memory) keeps its runs in memory.
    if storage is None:
        from chat_shell import run_store_from_settings

        config = InterfaceConfig(
            tools=tools[0],
            toolsets=tools[1],
            approve=approve,
            storage=make_storage(settings),
            run_store=run_store_from_settings(settings),
        )
    else:
        config = InterfaceConfig(
            tools=tools[0], toolsets=tools[1], approve=approve, storage=storage
        )
    return DirectChatInterface(config, settings=settings)


async def start_turn(
    interface: DirectChatInterface,
    start: Callable[[], StreamingChatOutput],
    *,
    wait: bool,
    note: Callable[[str], None],
) -> StreamingChatOutput:
    """``start()`` a turn once it has claimed its session. A session with a run in progress
    (in this process or any other sharing the run store) is a ``CLIError`` (exit 2) at once,
    or with ``wait``, the turn starts when that run has ended (``note`` says it waits)."""
    from chat_shell import NotFoundError, SessionBusyError

    said = False
    while True:
        stream = start()
        try:
            await stream.started()
        except SessionBusyError as exc:
            if not wait:
                raise CLIError(
                    f"session {exc.session_id} is busy: run {exc.run_id} is in progress on it;"
                    " pass --wait to wait for its end"
                ) from exc
            if not said:
                said = True
                note(f"session {exc.session_id} is busy (run {exc.run_id}): waiting for its end")
            with contextlib.suppress(NotFoundError):  # ended and purged already
                await interface.runs.wait(exc.run_id)
            continue
        return stream


def error_text(error: dict[str, Any]) -> str:
    """A run's error in one line; a model failure with its class (``rate_limited``,
    ``authentication`` …) and whether trying again may help."""
    from chat_shell import MODEL_ERROR_CODES

    message = str(error.get("message") or "the run failed")
    code = error.get("code")
    if code in MODEL_ERROR_CODES:
        details = [str(code)]
        if error.get("retry_after") is not None:
            details.append(f"retry after {error['retry_after']:g} s")
        elif error.get("retryable"):
            details.append("retryable")
        message += f" [{', '.join(details)}]"
    return message


def outcome(output: ChatOutput, reason: str | None = None) -> tuple[int, str | None]:
    """The exit code of a turn and, when it is not a success, why (one line)."""
    if output.status == "cancelled":
        return EXIT_INTERRUPTED, "cancelled"
    if output.status == "failed":
        error = output.error or {}
        return exit_code_for_error(error), error_text(error)
    if output.status == "incomplete":
        error = output.error or {}
        why = error.get("message") or reason or "the run stopped before the end"
        return EXIT_FAILURE, f"incomplete answer: {why}"
    # A tool that failed on the way is not a failed run: the model saw the error and answered.
    return EXIT_OK, None
