"""``chat-shell history``: list, show, search, delete, export, import."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chat_shell import load_settings

from ._exit import EXIT_FAILURE, EXIT_OK, CLIError
from ._runtime import (
    ensure_idle,
    find_session,
    plural,
    stdin_is_terminal,
    stdout_is_terminal,
    with_history,
)

if TYPE_CHECKING:
    from chat_shell import HistoryStorage, Message, SessionInfo, SessionUsage
    from rich.text import Text


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Aligned plain-text columns (the last column is not padded)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def cost_text(cost: float | None) -> str:
    """``$1.25``, ``$0.0123``, ``$0.000004`` (more decimals for smaller sums); ``-`` when the
    price is unknown."""
    if cost is None:
        return "-"
    if cost == 0:
        return "$0"
    if cost >= 0.01:
        return f"${cost:,.2f}"
    return f"${cost:.4f}" if cost >= 0.0001 else f"${cost:.6f}"


def usage_line(usage: SessionUsage) -> str:
    """``1,234 tokens (1,000 in, 234 out) in 3 model calls, $0.0012``."""
    line = (
        f"usage: {usage.total_tokens:,} tokens ({usage.prompt_tokens:,} in, "
        f"{usage.completion_tokens:,} out) in {plural(usage.calls, 'model call')}"
    )
    if usage.cost is not None:
        line += f", {cost_text(usage.cost)}"
    elif any(model.cost is not None for model in usage.models.values()):
        unpriced = sorted(name for name, m in usage.models.items() if m.cost is None)
        line += f", cost unknown (no price for {', '.join(unpriced)})"
    if len(usage.models) > 1:
        shares = [
            f"{name} {model.total_tokens:,}"
            + (f" {cost_text(model.cost)}" if model.cost is not None else "")
            for name, model in usage.models.items()
        ]
        line += "; " + ", ".join(shares)
    return line


def list_sessions(*, limit: int, json_output: bool, storage: str | None) -> int:
    from chat_shell import session_usage

    settings = load_settings(storage=storage)

    async def use(history: HistoryStorage) -> list[tuple[SessionInfo, SessionUsage]]:
        sessions = await history.list_sessions(limit=limit)
        return [(info, await session_usage(history, info.id)) for info in sessions]

    sessions = asyncio.run(with_history(settings, use, reading=True))
    if json_output:
        body = [
            {**info.model_dump(mode="json"), "usage": usage.model_dump(mode="json")}
            for info, usage in sessions
        ]
        print(json.dumps(body, indent=2))
        return EXIT_OK
    if not sessions:
        print("no sessions yet: start one with `chat-shell chat` or `chat-shell query`")
        return EXIT_OK
    rows = [
        [
            info.id,
            _when(info.updated_at),
            str(info.message_count),
            f"{usage.total_tokens:,}",
            cost_text(usage.cost) if usage.calls else "",
            info.title or "",
        ]
        for info, usage in sessions
    ]
    print(table(rows, ["ID", "UPDATED", "MESSAGES", "TOKENS", "COST", "TITLE"]))
    return EXIT_OK


def show(session_id: str, *, json_output: bool, storage: str | None) -> int:
    from chat_shell import SessionUsage

    settings = load_settings(storage=storage)

    async def use(history: HistoryStorage) -> tuple[SessionInfo, list[Message]]:
        info = await find_session(history, session_id)
        return info, await history.get_history(info.id)

    info, messages = asyncio.run(with_history(settings, use, reading=True))
    usage = SessionUsage.from_messages(messages).priced()  # the messages are at hand
    if json_output:
        body = {
            "session": info.model_dump(mode="json"),
            "usage": usage.model_dump(mode="json"),
            "messages": [message.model_dump(mode="json") for message in messages],
        }
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return EXIT_OK
    replay(info, messages, usage)
    return EXIT_OK


def replay(
    info: SessionInfo | None, messages: Sequence[Message], usage: SessionUsage | None = None
) -> None:
    """Print a conversation turn by turn: Markdown on a terminal, plain text otherwise; with
    ``usage``, its line under the session's heading."""
    from ._render import tool_call_line, tool_result_line

    console = None
    if stdout_is_terminal():
        from rich.console import Console

        console = Console(highlight=False)

    def heading(text: str) -> None:
        if console is not None:
            console.print(f"[bold]{text}[/bold]", highlight=False)
        else:
            print(text)

    def body(text: str, markdown: bool) -> None:
        if console is not None and markdown:
            from rich.markdown import Markdown

            console.print(Markdown(text))
        else:
            print(text)

    def line(text: str, style: str) -> None:
        if console is not None:
            from rich.text import Text

            console.print(Text(text, style=style))
        else:
            print(text)

    if info is not None:
        title = f" — {info.title}" if info.title else ""
        heading(f"session {info.id}{title}")
        print(f"started {_when(info.created_at)}, {plural(len(messages), 'message')}")
        if usage is not None and usage.calls:
            print(usage_line(usage))
    names: dict[str, str] = {}
    speaker = ""  # the role of the last heading: one heading per assistant turn, tools under it
    for message in messages:
        status = message.metadata.get("status")
        if message.role in ("user", "system"):
            speaker = message.role
        if message.role == "user":
            print()
            heading(f"You · {_when(message.timestamp)}")
            body(message.content or "", markdown=False)
        elif message.role == "system" and "context_summary" in message.metadata:
            print()
            heading("Summary of the earlier conversation (sent in place of it)")
            body((message.content or "").split("\n\n", 1)[-1], markdown=True)
        elif message.role == "system":
            print()
            heading("System")
            body(message.content or "", markdown=False)
        elif message.role == "assistant":
            if speaker != "assistant":
                speaker = "assistant"
                model = message.metadata.get("model")
                print()
                heading(f"Assistant{f' ({model})' if model else ''}")
            if message.content:
                body(message.content, markdown=True)
            for call in message.tool_calls or []:
                names[call.id] = call.name
                line(tool_call_line(call.name, call.arguments), "cyan")
            if status and status != "completed":
                line(f"[{status}]", "yellow")
        elif message.role == "tool":
            content = message.content or ""
            data: dict[str, Any] = {"name": message.name or names.get(message.tool_call_id or "")}
            data["error" if message.metadata.get("is_error") else "result"] = content
            line("  " + tool_result_line(data), "red" if "error" in data else "green")


def search(text: str, *, limit: int, json_output: bool, storage: str | None) -> int:
    settings = load_settings(storage=storage)

    async def use(history: HistoryStorage) -> list[dict[str, Any]]:
        return [
            {"session_id": hit.session_id, "role": hit.message.role, "snippet": hit.snippet}
            for hit in await history.search(text, limit=limit)
        ]

    hits = asyncio.run(with_history(settings, use, reading=True))
    if json_output:
        print(json.dumps(hits, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        print(f"nothing found for {text!r}")
        return EXIT_OK
    rows = [
        [hit["session_id"], hit["role"], " ".join(hit["snippet"].split())[:100]] for hit in hits
    ]
    lines = table(rows, ["SESSION", "ROLE", "MATCH"])
    if not stdout_is_terminal():
        print(lines)  # the **match** marks stay: they say where the words are
        return EXIT_OK
    from rich.console import Console

    console = Console(highlight=False)
    for line in lines.splitlines():
        console.print(_marked(line), soft_wrap=True)
    return EXIT_OK


def _marked(line: str) -> Text:
    """``a **b** c`` with ``b`` in bold: a search marks each match with ``**``."""
    from rich.text import Text

    text = Text()
    for i, part in enumerate(line.split("**")):
        text.append(part, style="bold" if i % 2 else "")
    return text


def delete(session_id: str, *, yes: bool, storage: str | None) -> int:
    settings = load_settings(storage=storage)

    async def find(history: HistoryStorage) -> SessionInfo:
        return await find_session(history, session_id)

    info = asyncio.run(with_history(settings, find))
    if not yes:
        if not stdin_is_terminal():
            raise CLIError(f"not deleting session {info.id} without confirmation: pass --yes")
        described = f"{info.id}" + (f" ({info.title})" if info.title else "")
        count = plural(info.message_count, "message")
        answer = input(f"Delete session {described} and its {count}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_FAILURE

    async def remove(history: HistoryStorage) -> None:
        await ensure_idle(settings, history, info.id)  # refused while a run is in progress
        await history.delete_session(info.id)

    asyncio.run(with_history(settings, remove))
    print(f"deleted session {info.id}")
    return EXIT_OK


def export(session_ids: list[str] | None, *, output: str | None, storage: str | None) -> int:
    from chat_shell import export_sessions

    settings = load_settings(storage=storage)

    async def use(history: HistoryStorage) -> list[str]:
        ids = None
        if session_ids:
            ids = [(await find_session(history, sid)).id for sid in session_ids]
        return [line async for line in export_sessions(history, ids)]

    lines = asyncio.run(with_history(settings, use, reading=True))
    if output is None:
        sys.stdout.writelines(lines)
        return EXIT_OK
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    sessions = sum(1 for line in lines if line.startswith('{"type": "session"'))
    print(f"exported {plural(sessions, 'session')} to {output}", file=sys.stderr)
    return EXIT_OK


def import_(path: str, *, storage: str | None) -> int:
    from chat_shell import import_sessions

    settings = load_settings(storage=storage)
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise CLIError(f"{path} is not UTF-8 text: nothing was imported") from exc

    async def use(history: HistoryStorage) -> Any:
        return await import_sessions(history, text)

    report = asyncio.run(with_history(settings, use))
    imported = plural(len(report.imported), "session")
    print(f"imported {imported} ({plural(report.messages, 'message')})")
    for session_id, reason in report.skipped.items():
        print(f"skipped {session_id}: {reason}")
    return EXIT_OK
