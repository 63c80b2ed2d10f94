"""The entry point: parse, run the command, turn the outcome into an exit code."""

from __future__ import annotations

import contextlib
import os
import sys

from ._exit import EXIT_INTERRUPTED, EXIT_OK, report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``chat-shell`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    # httpx imports its own command line (rich, pygments, click: ~0.2 s) whenever those are
    # installed, and they are here; chat-shell never uses it, so it is kept from loading.
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    if os.environ.get("CHAT_SHELL_PRINT_MODULES"):
        import atexit

        # For the tests that check which modules a command imports.
        atexit.register(_print_modules, os.environ["CHAT_SHELL_PRINT_MODULES"])
    import typer
    from typer.main import get_command

    from ._app import build_app
    from ._plugins import add_missing_commands

    try:
        app = build_app(_invoked(args))
        add_missing_commands(app)
        command = get_command(app)
        result = command.main(args=args, prog_name="chat-shell", standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `chat-shell`: help, success
            print(exc.message)
            return EXIT_OK
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"chat-shell: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    except typer.Abort:
        print("chat-shell: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    return result if isinstance(result, int) else EXIT_OK


def _invoked(args: list[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    for arg in args:
        if not arg.startswith("-"):
            return arg
        if arg in ("-h", "--help", "-V", "--version"):
            return None
    return None


def _print_modules(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(sorted(sys.modules)))
