"""``chat-shell query``: one question, the answer streamed to stdout."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from chat_shell import load_settings

from ._agent_setup import (
    check_requested,
    make_interface,
    outcome,
    select_tools,
    start_turn,
    toolset_warnings,
)
from ._exit import CLIError
from ._runtime import CtrlC, choose_session, stdin_is_terminal, stdout_is_terminal

if TYPE_CHECKING:
    from chat_shell import ChatEvent, Settings

    from ._render import PlainRenderer, RichRenderer


def read_input(message: str | None) -> str:
    """The message, with whatever was piped into stdin appended."""
    piped = ""
    if not stdin_is_terminal() and sys.stdin is not None:
        piped = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    parts = [part for part in (message, piped.strip("\n")) if part and part.strip()]
    if not parts:
        raise CLIError('nothing to ask: give a message (chat-shell query "…") or pipe text in')
    return "\n\n".join(parts)


def query(
    message: str | None,
    *,
    model: str | None,
    system: str | None,
    tools: list[str] | None,
    no_tools: bool,
    session: str | None,
    resume: bool,
    no_store: bool,
    json_output: bool,
    events: bool,
    show_thinking: bool,
    storage: str | None,
    yes: bool,
    wait: bool = False,
) -> int:
    if json_output and events:
        raise CLIError("choose one of --json and --events")
    text = read_input(message)
    settings = load_settings(model=model, storage=storage)
    return asyncio.run(
        _query(
            settings,
            text,
            system=system,
            tool_names=tools,
            no_tools=no_tools,
            session=session,
            resume=resume,
            store=not no_store,
            mode="json" if json_output else "events" if events else "text",
            show_thinking=show_thinking,
            yes=yes,
            wait=wait,
        )
    )


async def _ask_terminal(question: str) -> bool:
    """Ask on the controlling terminal (stdin may be a pipe)."""

    def ask() -> str:
        with open("/dev/tty", "r+", encoding="utf-8") as tty:
            tty.write(question)
            tty.flush()
            return tty.readline()

    try:
        answer = await asyncio.to_thread(ask)
    except OSError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def _query(
    settings: Settings,
    text: str,
    *,
    system: str | None,
    tool_names: list[str] | None,
    no_tools: bool,
    session: str | None,
    resume: bool,
    store: bool,
    mode: str,
    show_thinking: bool,
    yes: bool,
    wait: bool,
) -> int:
    from chat_shell import ChatInput, create_storage

    from ._render import PlainRenderer, RichRenderer, tool_call_line

    renderer: PlainRenderer | RichRenderer | None = None
    if mode == "text":
        if stdout_is_terminal():
            from rich.console import Console

            renderer = RichRenderer(Console(highlight=False), show_thinking)
        else:
            renderer = PlainRenderer(show_thinking=show_thinking)
        renderer.show_errors = False

    async def approve(name: str, arguments: dict[str, Any]) -> bool:
        if yes:
            return True
        if renderer is not None:
            renderer.pause()
        line = tool_call_line(name, arguments)
        if not sys.stderr.isatty():
            print(
                f"chat-shell: {line} was not approved: it needs approval; "
                "pass --yes to allow every call",
                file=sys.stderr,
            )
            return False
        return await _ask_terminal(f"Allow {line}? [y/N] ")

    # Without storing and without an earlier session to read, history stays in memory.
    keep = store or session is not None or resume
    provider = None if keep else create_storage("memory")
    tools = select_tools(settings, tool_names, no_tools)
    interface = make_interface(settings, tools, approve=approve, storage=provider)
    await interface.initialize()
    ctrl_c = CtrlC()
    try:
        for warning in toolset_warnings(interface):
            print(f"chat-shell: warning: {warning}", file=sys.stderr, flush=True)
        check_requested(settings, tool_names, interface)
        history = interface.storage.history
        session_id, _ = await choose_session(history, session, resume)
        turn = ChatInput(message=text, session_id=session_id, system_prompt=system, store=store)
        stream = await start_turn(
            interface,
            lambda: interface.stream_chat(turn),
            wait=wait,
            note=lambda text: print(f"chat-shell: {text}", file=sys.stderr, flush=True),
        )
        for warning in stream.warnings:
            print(f"chat-shell: warning: {warning}", file=sys.stderr, flush=True)
        reason: str | None = None
        write = sys.stdout.write
        with ctrl_c.cancels(stream.run):
            async for event in stream.events():
                if mode == "events":
                    write(_event_line(event))
                    sys.stdout.flush()
                elif renderer is not None:
                    renderer.handle(event)
                if event.event_type.value == "complete":
                    reason = event.data.get("reason")
            if renderer is not None:
                renderer.close()
            output = await stream.output()
            if mode == "json":
                print(output.model_dump_json(indent=2))
    finally:
        await interface.shutdown()
    code, why = outcome(output, reason)
    if why and not (ctrl_c.pressed and code == 130):
        print(f"chat-shell: {why}", file=sys.stderr)
    elif ctrl_c.pressed:
        kept = " (the partial answer is stored)" if store else ""
        print(f"chat-shell: interrupted{kept}", file=sys.stderr)
    return code


def _event_line(event: ChatEvent) -> str:
    return event.model_dump_json() + "\n"
