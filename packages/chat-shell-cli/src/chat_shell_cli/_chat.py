"""``chat-shell chat``: the interactive session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chat_shell import default_home, load_settings

from ._agent_setup import (
    check_requested,
    make_interface,
    select_tools,
    start_turn,
    toolset_warnings,
)
from ._exit import EXIT_OK, CLIError
from ._runtime import CtrlC, choose_session, plural, stdin_is_terminal
from ._typeahead import TypeAhead

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chat_shell import DirectChatInterface, Settings, Tool, Toolset
    from prompt_toolkit.key_binding import KeyPress
    from rich.console import Console

    from ._render import PlainRenderer, RichRenderer

SLASH_COMMANDS = {
    "/help": "show this help",
    "/clear": "forget this session's messages (the session id stays) and clear the screen",
    "/history": "replay this session so far",
    "/model": "show the model, or switch with /model NAME",
    "/tools": "list the tools the model may use",
    "/session": "show the session id",
    "/new": "start a new session",
    "/retry": "ask the last question again (its old answer is dropped)",
    "/exit": "leave (also: exit, quit, Ctrl-D)",
}
INPUT_HISTORY = "input_history"


def answer_of(text: str) -> str:
    """An approval answer: ``yes``, ``always`` or ``no`` (anything else, or nothing)."""
    word = text.strip().lower()
    if word in ("y", "yes"):
        return "yes"
    if word in ("a", "always"):
        return "always"
    return "no"


def chat(
    *,
    model: str | None,
    system: str | None,
    tools: list[str] | None,
    no_tools: bool,
    session: str | None,
    resume: bool,
    show_thinking: bool,
    storage: str | None,
    wait: bool = False,
) -> int:
    settings = load_settings(model=model, storage=storage)
    chosen = select_tools(settings, tools, no_tools)
    chat_session = ChatSession(settings, chosen, system, show_thinking, wait=wait)
    chat_session.requested = tools
    return asyncio.run(chat_session.main(session, resume))


async def _idle(interface: DirectChatInterface, session_id: str) -> None:
    """``CLIError`` (exit 2) if the session has a run in progress in any process."""
    from chat_shell import SessionBusyError

    try:
        await interface.runs.ensure_idle(session_id)
    except SessionBusyError as exc:
        raise CLIError(
            f"session {session_id} is busy: run {exc.run_id} is in progress on it;"
            " pass --wait to wait for its end"
        ) from exc


def _private_file(path: Path) -> Path:
    """Create ``path`` 0600 (and its folder 0700) if missing."""
    from chat_shell._config import make_private_folder

    make_private_folder(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


class PromptReader:
    """Line editing, input history (arrow keys, saved in the home) and multi-line input."""

    def __init__(self, history_file: Path) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import WordCompleter
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

        bindings = KeyBindings()

        @bindings.add("enter")
        def _submit(event: KeyPressEvent) -> None:
            buffer = event.current_buffer
            if buffer.document.text_before_cursor.endswith("\\"):
                buffer.delete_before_cursor(1)
                buffer.insert_text("\n")
            else:
                buffer.validate_and_handle()

        @bindings.add("escape", "enter")
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("\n")

        self.session: Any = PromptSession(
            history=FileHistory(str(_private_file(history_file))),
            key_bindings=bindings,
            multiline=True,
            prompt_continuation="… ",
            completer=WordCompleter(list(SLASH_COMMANDS), sentence=True),
            complete_while_typing=True,
        )

    async def read(self, typed: Sequence[KeyPress] = ()) -> str:
        """The next input; ``typed`` (keys typed while the last answer streamed) are handled
        first, as if typed at this prompt."""
        from prompt_toolkit.input.typeahead import store_typeahead

        store_typeahead(self.session.input, list(typed))
        return str(await self.session.prompt_async("❯ "))

    async def confirm(self, question: str) -> str:
        from prompt_toolkit import PromptSession

        try:
            session: Any = PromptSession()
            answer = await session.prompt_async(question)
        except (KeyboardInterrupt, EOFError):
            return "no"
        return answer_of(str(answer))


class LineReader:
    """Input from a pipe or file: one message per line."""

    async def read(self, typed: Sequence[KeyPress] = ()) -> str:
        line: str = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            raise EOFError
        return line.rstrip("\n")

    async def confirm(self, question: str) -> str:
        print(question, flush=True)
        answer = await asyncio.to_thread(sys.stdin.readline)
        return answer_of(answer)


class ChatSession:
    def __init__(
        self,
        settings: Settings,
        tools: tuple[list[Tool], list[Toolset]],
        system: str | None,
        show_thinking: bool,
        *,
        wait: bool = False,
    ) -> None:
        from rich.console import Console

        self.settings = settings
        self.chosen = tools
        self.requested: list[str] | None = None  # the --tool names
        self.always: set[str] = set()  # tools the user allowed for the rest of the session
        self.wait = wait
        self.system = system
        self.show_thinking = show_thinking
        self.console: Console = Console(highlight=False)
        # Without a terminal, stdout carries the answers (and what slash commands print) and
        # stderr the rest (banner, tool calls, notes), as with `query`; neither is wrapped.
        self.notes: Console = self.console
        if not self.console.is_terminal:
            self.console = Console(highlight=False, soft_wrap=True)
            self.notes = Console(highlight=False, soft_wrap=True, stderr=True)
        self.interactive = stdin_is_terminal()
        self.reader: PromptReader | LineReader = (
            PromptReader(default_home() / INPUT_HISTORY) if self.interactive else LineReader()
        )
        self.typeahead = TypeAhead(sys.stdin.fileno()) if self.interactive else None
        self.renderer: PlainRenderer | RichRenderer | None = None
        self.model = settings.model
        self.session_id = ""
        self.interface: DirectChatInterface | None = None

    # -- output ------------------------------------------------------------------------------------

    def say(self, text: str, style: str = "dim") -> None:
        """A note about the session (stderr without a terminal)."""
        from rich.text import Text

        self.notes.print(Text(text, style=style))

    def reply(self, text: str, style: str = "") -> None:
        """What a slash command answers (stdout)."""
        from rich.text import Text

        self.console.print(Text(text, style=style))

    def _new_renderer(self) -> PlainRenderer | RichRenderer:
        from ._render import PlainRenderer, RichRenderer

        if self.console.is_terminal:
            return RichRenderer(self.console, self.show_thinking)
        return PlainRenderer(out=sys.stdout, notes=sys.stderr, show_thinking=self.show_thinking)

    @property
    def tools(self) -> list[Tool]:
        if self.interface is not None:
            return list(self.interface.available_tools().values())
        return list(self.chosen[0])

    async def approve(self, name: str, arguments: dict[str, Any]) -> bool:
        """Ask before a call that needs approval: yes, no, or always (this tool, for the rest of
        the session)."""
        from ._render import tool_call_line

        if name in self.always:
            return True
        if self.renderer is not None:
            self.renderer.pause()
        released = self.typeahead.released() if self.typeahead else contextlib.nullcontext()
        with released:
            answer = await self.reader.confirm(
                f"Allow {tool_call_line(name, arguments)}? [y]es / [N]o / [a]lways this session "
            )
        if answer == "always":
            self.always.add(name)
        return answer in ("yes", "always")

    # -- the session -------------------------------------------------------------------------------

    async def main(self, session: str | None, resume: bool) -> int:
        interface = make_interface(self.settings, self.chosen, approve=self.approve)
        await interface.initialize()
        self.interface = interface
        try:
            for warning in toolset_warnings(interface):
                print(f"chat-shell: warning: {warning}", file=sys.stderr, flush=True)
            check_requested(self.settings, self.requested, interface)
            # Missing credentials or a bad model name: say so before the first question (a
            # fallback that cannot be used is left out, with a warning).
            for warning in interface.resolve_models(self.model)[1]:
                print(f"chat-shell: warning: {warning}", file=sys.stderr, flush=True)
            history = interface.storage.history
            self.session_id, existed = await choose_session(history, session, resume)
            if existed and not self.wait:
                # A session busy elsewhere (a server's run): say so before the first question.
                await _idle(interface, self.session_id)
            state = "continued" if existed else "new"
            self.say(
                f"chat-shell · {self.model} · session {self.session_id} ({state})"
                " — /help for commands, Ctrl-D to leave",
            )
            if existed:
                count = len(await history.get_history(self.session_id))
                self.say(f"{plural(count, 'earlier message')}; /history replays them")
            await self._loop()
        finally:
            await interface.shutdown()
        return EXIT_OK

    async def _loop(self) -> None:
        while True:
            typed = self.typeahead.take() if self.typeahead else []
            try:
                text = await self.reader.read(typed)
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return
            stripped = text.strip()
            if not stripped:
                continue
            if stripped in ("exit", "quit", "/exit", "/quit"):
                return
            first = stripped.split()[0]
            if first.startswith("/") and "/" not in first[1:]:
                await self._command(first, stripped[len(first) :].strip())
                continue
            await self.turn(text)

    async def turn(self, text: str) -> None:
        from chat_shell import ChatInput, ChatShellError

        assert self.interface is not None
        turn = ChatInput(
            message=text, session_id=self.session_id, model=self.model, system_prompt=self.system
        )
        interface = self.interface
        try:
            stream = await start_turn(
                interface,
                lambda: interface.stream_chat(turn),
                wait=self.wait,
                note=lambda text: self.say(text, "yellow"),
            )
        except CLIError as exc:
            self.say(f"error: {exc.message}", "red")
            return
        except ChatShellError as exc:
            self.say(f"error: {exc.message}", "red")
            return
        self.renderer = renderer = self._new_renderer()
        holding = self.typeahead.holding() if self.typeahead else contextlib.nullcontext()
        with holding, CtrlC().cancels(stream.run):
            try:
                async for event in stream.events():
                    renderer.handle(event)
            finally:
                renderer.close()
                self.renderer = None
        output = await stream.output()
        if output.status == "cancelled":
            self.say("⏹ stopped — the partial answer is kept, marked cancelled", "yellow")
        elif output.status == "incomplete":
            why = output.reason or "a limit stopped the run"
            self.say(f"the answer is incomplete: {why}", "yellow")

    # -- slash commands --------------------------------------------------------------------------

    async def _command(self, command: str, argument: str) -> None:
        from chat_shell import ChatShellError

        handlers = {
            "/help": self._help,
            "/clear": self._clear,
            "/history": self._history,
            "/model": self._model,
            "/tools": self._tools,
            "/session": self._session,
            "/new": self._new,
            "/retry": self._retry,
        }
        handler = handlers.get(command)
        if handler is None:
            self.say(f"unknown command {command} — /help lists them", "red")
            return
        try:
            await handler(argument)
        except ChatShellError as exc:
            self.say(f"error: {exc.message}", "red")

    async def _help(self, argument: str) -> None:
        width = max(len(name) for name in SLASH_COMMANDS)
        for name, description in SLASH_COMMANDS.items():
            self.console.print(f"  [bold]{name.ljust(width)}[/bold]  {description}")
        self.reply(
            "Enter sends · Alt-Enter or a line ending in \\ adds a line · ↑/↓ earlier input · "
            "Ctrl-C stops an answer · Ctrl-D leaves",
            "dim",
        )

    async def _clear(self, argument: str) -> None:
        from chat_shell import NotFoundError

        assert self.interface is not None
        with contextlib.suppress(NotFoundError):
            await self.interface.clear_history(self.session_id)  # refused while busy
        if self.console.is_terminal:
            self.console.clear()
        self.reply(f"session {self.session_id} cleared", "dim")

    async def _history(self, argument: str) -> None:
        from ._history import replay

        assert self.interface is not None
        messages = await self.interface.storage.history.get_history(self.session_id)
        if not messages:
            self.reply("nothing said yet in this session", "dim")
            return
        replay(None, messages)

    async def _model(self, argument: str) -> None:
        assert self.interface is not None
        if not argument:
            self.reply(f"model: {self.model}")
            return
        spec = self.interface.router.resolve(argument)
        self.model = argument
        shown = argument if spec.name == argument else f"{argument} ({spec.name})"
        self.reply(f"model: {shown}")

    async def _tools(self, argument: str) -> None:
        from rich.text import Text

        tools = self.tools
        if not tools:
            self.reply("no tools (started with --no-tools, or none is available)", "dim")
            return
        names = [tool.name + (" (asks first)" if tool.requires_approval else "") for tool in tools]
        width = max(len(name) for name in names)
        for name, tool in zip(names, tools, strict=True):
            description = tool.description.strip().splitlines()[0] if tool.description else ""
            line = Text("  ")
            line.append(name.ljust(width), style="bold")
            line.append(f"  {description}")
            self.console.print(line)

    async def _session(self, argument: str) -> None:
        self.reply(f"session: {self.session_id}")

    async def _new(self, argument: str) -> None:
        self.session_id = str(uuid.uuid4())
        self.reply(f"new session {self.session_id}", "dim")

    async def _retry(self, argument: str) -> None:
        from chat_shell import session_title

        assert self.interface is not None
        messages = await self.interface.get_history(self.session_id)
        last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
        if last is None:
            self.reply("nothing to retry yet", "dim")
            return
        question = messages[last].content or ""
        # The question and everything after it go in one step; the turn asks it again.
        await self.interface.truncate_history(self.session_id, last)
        self.say(f"retrying: {session_title(question)}")
        await self.turn(question)
