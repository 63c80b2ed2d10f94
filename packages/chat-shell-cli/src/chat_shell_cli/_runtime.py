"""What every command needs: the effective settings, the history storage, a session to use.

Everything heavy (chat_shell and pydantic, the storage backends) is imported in the functions,
so that ``chat-shell --help`` never pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._exit import CLIError

if TYPE_CHECKING:
    from chat_shell import AgentRun, HistoryStorage, SessionInfo, Settings, StorageProvider

T = TypeVar("T")

STORAGE_CHOICES = ("sqlite", "json", "memory", "remote")


def home() -> Path:
    from chat_shell import default_home

    return default_home()


def load(**overrides: Any) -> Settings:
    """The effective settings: flags (``overrides``) > CHAT_SHELL_* > config.toml > defaults."""
    from chat_shell import load_settings

    return load_settings(**overrides)


def make_storage(settings: Settings, *, reading: bool = False) -> StorageProvider:
    """The configured backend (``UserError`` for an unknown or uninstalled one).

    ``reading``: the command only reads, so a SQLite file this user may not write is opened
    read-only rather than refused.
    """
    from chat_shell import create_storage, storage_from_settings

    if reading and settings.storage == "sqlite":
        return create_storage("sqlite", path=settings.storage_path, read_only="auto")
    return storage_from_settings(settings)


async def ensure_idle(settings: Settings, history: HistoryStorage, session_id: str) -> None:
    """``SessionBusyError`` if the session has a run in progress in any process sharing the
    run store (a server, another CLI); a run whose process died is ended first."""
    from chat_shell import RunManager, run_store_from_settings

    manager = RunManager(
        run_store_from_settings(settings), history, lease_seconds=settings.run_lease_seconds
    )
    await manager.open()
    try:
        await manager.ensure_idle(session_id)
    finally:
        await manager.close()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine."""
    return asyncio.run(main)


async def with_history(
    settings: Settings, use: Callable[[HistoryStorage], Awaitable[T]], *, reading: bool = False
) -> T:
    """Open the configured storage, call ``use(history)``, close it (``reading``: see
    ``make_storage``)."""
    provider = make_storage(settings, reading=reading)
    await provider.initialize()
    try:
        return await use(provider.history)
    finally:
        await provider.close()


async def find_session(history: HistoryStorage, session_id: str) -> SessionInfo:
    """The session named by its id or by a unique prefix of it; ``NotFoundError`` otherwise."""
    from chat_shell import NotFoundError

    found = await match_session(history, session_id)
    if found is None:
        raise NotFoundError(f"unknown session {session_id!r} (see `chat-shell history`)")
    return found


async def match_session(history: HistoryStorage, session_id: str) -> SessionInfo | None:
    """The session with this id, else the one whose id starts with it, else ``None``;
    ``UserError`` for an id that is not valid, ``NotFoundError`` for an ambiguous prefix."""
    from chat_shell import NotFoundError, validate_session_id

    validate_session_id(session_id)
    try:
        return await history.get_session(session_id)
    except NotFoundError:
        pass
    matches: list[SessionInfo] = []
    offset = 0
    while True:
        page = await history.list_sessions(limit=200, offset=offset)
        matches += [info for info in page if info.id.startswith(session_id)]
        if len(page) < 200 or len(matches) > 1:
            break
        offset += 200
    if len(matches) > 1:
        raise NotFoundError(
            f"session id {session_id!r} is ambiguous: it starts "
            + ", ".join(info.id for info in matches[:5])
        )
    return matches[0] if matches else None


async def last_session(history: HistoryStorage) -> SessionInfo:
    sessions = await history.list_sessions(limit=1)
    if not sessions:
        raise CLIError("there is no session to continue yet: start one without --continue")
    return sessions[0]


async def choose_session(
    history: HistoryStorage, session_id: str | None, resume_last: bool
) -> tuple[str, bool]:
    """The session a turn goes to and whether it already exists: ``--session ID`` continues
    the session with that id (or a unique prefix of it), or starts one with that id."""
    if session_id and resume_last:
        raise CLIError("use either --session or --continue, not both")
    if session_id:
        found = await match_session(history, session_id)
        return (session_id, False) if found is None else (found.id, True)
    if resume_last:
        return (await last_session(history)).id, True
    import uuid

    return str(uuid.uuid4()), False


class CtrlC:
    """Ctrl-C as "stop this answer": ``pressed`` says whether it was."""

    def __init__(self) -> None:
        self.pressed = False

    @contextlib.contextmanager
    def cancels(self, run: AgentRun) -> Iterator[None]:
        """While inside, Ctrl-C cancels ``run`` (its partial answer is stored, marked
        cancelled) instead of raising ``KeyboardInterrupt``."""

        def interrupt() -> None:
            self.pressed = True
            run.cancel()

        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)


def plural(count: int, noun: str) -> str:
    """``1 session``, ``2 sessions``, ``0 sessions``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def title_of(message: str) -> str:
    line = next((part.strip() for part in message.splitlines() if part.strip()), "")
    return line if len(line) <= 60 else line[:59] + "…"


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed
        return False


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except ValueError:
        return False
