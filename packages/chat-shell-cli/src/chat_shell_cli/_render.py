"""Showing a run as it happens: answer text, thinking, tool calls and their results.

``PlainRenderer`` writes the answer as it comes (pipes, files, no colour); ``RichRenderer``
renders it as Markdown in the terminal while it streams. Both show each tool call on one line,
``🔧 calculator(expression="123 * 456")``, and its result on the next, ``✅ 56088``.
"""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chat_shell import ChatEvent
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = [
    "PlainRenderer",
    "RichRenderer",
    "context_note",
    "tool_call_line",
    "tool_result_line",
]

_ARGUMENT_CHARS = 120
_RESULT_CHARS = 100


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_call_line(name: str, arguments: dict[str, Any]) -> str:
    """``🔧 name(a=1, b="x")``: every argument with its name, values as JSON."""
    inner = ", ".join(
        f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items()
    )
    return f"🔧 {name}({_short(inner, _ARGUMENT_CHARS)})"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(empty)"
    first = lines[0] + (" …" if len(lines) > 1 else "")
    return _short(first, _RESULT_CHARS)


def tool_result_line(data: dict[str, Any], *, with_name: bool = False) -> str:
    """``✅ result`` or ``❌ error``, on one line."""
    prefix = f"{data.get('name')}: " if with_name else ""
    if "error" in data:
        error = str(data["error"])
        error = error[len("error: ") :] if error.startswith("error: ") else error
        return f"❌ {prefix}{_one_line(error)}"
    return f"✅ {prefix}{_one_line(str(data.get('result', '')))}"


def context_note(data: dict[str, Any]) -> str | None:
    """What a ``complete`` event says of earlier messages left out of the request (``None``:
    everything was sent)."""
    dropped = data.get("messages_dropped") or 0
    if not isinstance(dropped, int) or dropped <= 0:
        return None
    summarized = data.get("messages_summarized") or 0
    count = f"{dropped} earlier message{'s' if dropped != 1 else ''}"
    if summarized and summarized >= dropped:
        how = "were sent as a summary"
    elif summarized:
        how = f"were left out ({summarized} of them sent as a summary)"
    else:
        how = "were left out"
    return f"ℹ {count} {how} to fit the model's context window (the history keeps them all)"


class _Renderer:
    """What both renderers share: tool lines, error lines."""

    #: whether ``error`` events are shown (``query`` reports the failure once, at the end)
    show_errors = True

    def __init__(self) -> None:
        self._pending_tools = 0

    def handle(self, event: ChatEvent) -> None:
        kind = event.event_type.value
        data = event.data
        if kind == "content":
            self.content(data["delta"])
        elif kind == "thinking":
            self.thinking(data["delta"])
        elif kind == "tool_call":
            self.pause()
            self._pending_tools += 1
            self.note(tool_call_line(data["name"], data.get("arguments") or {}), "cyan")
        elif kind == "tool_result":
            self.pause()
            several = self._pending_tools > 1
            self._pending_tools = max(self._pending_tools - 1, 0)
            line = "  " + tool_result_line(data, with_name=several)
            self.note(line, "red" if "error" in data else "green")
        elif kind == "complete":
            note = context_note(data)
            if note:
                self.pause()
                self.note(note, "dim")
        elif kind == "error" and self.show_errors:
            from ._agent_setup import error_text

            self.pause()
            self.note(f"error: {error_text(data)}", "red")

    def content(self, delta: str) -> None:
        raise NotImplementedError

    def thinking(self, delta: str) -> None:
        raise NotImplementedError

    def note(self, line: str, style: str) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Finish what is on screen (before a tool line or a question to the user)."""

    def close(self) -> None:
        self.pause()


class PlainRenderer(_Renderer):
    """The answer to ``out`` as it arrives, everything else to ``notes``; no colour."""

    def __init__(
        self, out: IO[str] | None = None, notes: IO[str] | None = None, show_thinking: bool = False
    ) -> None:
        super().__init__()
        self.out = out or sys.stdout
        self.notes = notes or sys.stderr
        self.show_thinking = show_thinking
        self._open_line = False  # the answer's last line has no newline yet
        self._thinking = False

    def content(self, delta: str) -> None:
        if self._thinking:
            self.notes.write("\n")
            self._thinking = False
        self.out.write(delta)
        self.out.flush()
        if delta:
            self._open_line = not delta.endswith("\n")

    def thinking(self, delta: str) -> None:
        if self.show_thinking:
            self.notes.write(delta)
            self.notes.flush()
            self._thinking = True

    def pause(self) -> None:
        if self._thinking:
            self.notes.write("\n")
            self._thinking = False
        if self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = False

    def note(self, line: str, style: str) -> None:
        self.notes.write(line + "\n")
        self.notes.flush()


class RichRenderer(_Renderer):
    """Markdown rendered live in the terminal while the answer streams; thinking dimmed."""

    def __init__(self, console: Console, show_thinking: bool = False) -> None:
        super().__init__()
        self.console = console
        self.show_thinking = show_thinking
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._live: Live | None = None

    def _renderable(self) -> RenderableType:
        from rich.console import Group
        from rich.markdown import Markdown
        from rich.text import Text

        parts: list[RenderableType] = []
        if self._thinking:
            parts.append(Text("".join(self._thinking).strip(), style="dim italic"))
        if self._text:
            parts.append(Markdown("".join(self._text)))
        return Group(*parts)

    def _start(self) -> None:
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                console=self.console,
                get_renderable=self._renderable,
                refresh_per_second=10,
                vertical_overflow="visible",
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def content(self, delta: str) -> None:
        self._text.append(delta)
        self._start()

    def thinking(self, delta: str) -> None:
        if self.show_thinking:
            self._thinking.append(delta)
            self._start()

    def pause(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
        self._text = []
        self._thinking = []

    def note(self, line: str, style: str) -> None:
        from rich.text import Text

        self.console.print(Text(line, style=style), highlight=False)
