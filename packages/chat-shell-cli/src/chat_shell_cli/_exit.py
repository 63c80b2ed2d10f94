"""Exit codes, and the one place where errors become them.

====  =======================================================================================
code  meaning
====  =======================================================================================
0     success
1     the run failed: the model or the storage failed, or a limit stopped it (reason on stderr)
2     user error: bad input or options, bad configuration, missing credentials, unknown session,
      a session with a run in progress
130   interrupted (Ctrl-C)
====  =======================================================================================
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CLIError",
    "exit_code_for",
    "exit_code_for_class",
    "exit_code_for_error",
    "report",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """An error of the command line itself, with the exit code it ends with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _exit_codes() -> dict[type[BaseException], int]:
    """The one mapping from the core error tree to exit codes; a class not listed has its
    nearest parent's. (Made when asked: the CLI imports chat_shell only for the commands that
    need it, and asks only once chat_shell's errors are loaded.)"""
    from chat_shell import ChatShellError, NotFoundError, SessionBusyError, UserError

    return {
        SessionBusyError: EXIT_USAGE,
        NotFoundError: EXIT_USAGE,
        UserError: EXIT_USAGE,
        ChatShellError: EXIT_FAILURE,
    }


def exit_code_for_class(error_class: type[BaseException] | None) -> int:
    """The exit code of an error of ``error_class`` (``None``: an error no class stands for)."""
    if error_class is None or "chat_shell._errors" not in sys.modules:
        return EXIT_FAILURE  # chat_shell not loaded: the error cannot be one of its classes
    codes = _exit_codes()
    return next((codes[cls] for cls in error_class.__mro__ if cls in codes), EXIT_FAILURE)


def exit_code_for_error(error: dict[str, Any]) -> int:
    """The exit code of a run that failed with ``error`` (its ``error`` event's data)."""
    from chat_shell import ChatShellError

    return exit_code_for_class(ChatShellError.for_code(str(error.get("code") or "")))


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an exception that ended a command."""
    if isinstance(exc, CLIError):
        return exc.code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return exit_code_for_class(type(exc))


def message_for(exc: BaseException) -> str:
    if isinstance(exc, CLIError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    errors = sys.modules.get("chat_shell._errors")
    if errors is not None and isinstance(exc, errors.ChatShellError):
        return str(exc.message)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"internal error: {type(exc).__name__}: {exc} (set CHAT_SHELL_DEBUG=1 for details)"


def debugging() -> bool:
    return os.environ.get("CHAT_SHELL_DEBUG", "") not in ("", "0", "false", "no")


def report(exc: BaseException) -> int:
    """Print one line about ``exc`` on stderr (a traceback too with CHAT_SHELL_DEBUG=1)."""
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    print(f"chat-shell: {message_for(exc)}", file=sys.stderr, flush=True)
    return exit_code_for(exc)
