"""``python -m chat_shell_http [OPTIONS]``: the same server as ``chat-shell serve [OPTIONS]``."""

from __future__ import annotations

import sys

import typer

from ._cli import register


def main(argv: list[str] | None = None) -> None:
    app = typer.Typer(add_completion=False)
    register(app)

    @app.callback()
    def _root() -> None:
        """chat-shell HTTP server."""

    args = sys.argv[1:] if argv is None else argv
    app(["serve", *args], prog_name="python -m chat_shell_http")


if __name__ == "__main__":
    main()
