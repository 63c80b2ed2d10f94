"""The start-up floor of bench_cli.py: a bare typer app with a few commands, nothing else.

python benchmarks/floor_typer.py --help
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, help="A bare typer app: the floor for CLI start-up.")


@app.command()
def query(message: str, model: str = typer.Option("openai/gpt-4o-mini", help="model")) -> None:
    """Ask one question."""
    print(message, model)


@app.command()
def history(limit: int = typer.Option(20, help="sessions to list")) -> None:
    """List sessions."""
    print(limit)


@app.command()
def config() -> None:
    """Show the configuration."""
    print("config")


if __name__ == "__main__":
    app()
