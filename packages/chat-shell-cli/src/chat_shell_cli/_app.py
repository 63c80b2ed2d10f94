"""The command tree. Only typer and the standard library are imported here: each command imports
what it needs when it runs, so ``chat-shell --help`` stays fast."""

from __future__ import annotations

from typing import Annotated

import typer

from ._plugins import register_plugins

__all__ = ["build_app"]

# -- shared options ------------------------------------------------------------------------------

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="MODEL",
        help="Model or alias, e.g. openai/gpt-4o-mini (default: config `model`).",
    ),
]
System = Annotated[
    str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt for this turn.")
]
Tools = Annotated[
    list[str] | None,
    typer.Option(
        "--tool",
        "-t",
        metavar="NAME",
        help="Allow only this tool (repeatable; default: every available tool).",
    ),
]
NoTools = Annotated[bool, typer.Option("--no-tools", help="Offer no tools to the model.")]
Session = Annotated[
    str | None,
    typer.Option(
        "--session",
        metavar="ID",
        help="Continue this session (its id, or a unique prefix of it); "
        "with an id no session has, start a new session with that id.",
    ),
]
Resume = Annotated[bool, typer.Option("--continue", "-c", help="Continue the most recent session.")]
Wait = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="If the session has a run in progress (a server's, another terminal's), wait for"
        " its end instead of exiting with code 2.",
    ),
]
ShowThinking = Annotated[
    bool, typer.Option("--show-thinking", help="Show the model's reasoning, dimmed.")
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="History backend: sqlite (default), json, memory, remote or postgres"
        " (config `storage`).",
        metavar="NAME",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        def of(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        typer.echo(f"chat-shell {of('chat-shell-cli')} (chat-shell-core {of('chat-shell-core')})")
        raise typer.Exit()


# -- the app ---------------------------------------------------------------------------------------

ROOT_HELP = """Chat with an LLM agent that can use tools, from the terminal.

\b
Examples:
  chat-shell chat                          talk (Ctrl-C stops an answer, Ctrl-D leaves)
  chat-shell query "What is 123 * 456?"    one question, the answer on stdout
  git diff | chat-shell query "review this"
  chat-shell history                       past sessions, newest first
  chat-shell config set model openai/gpt-4o-mini
  chat-shell models                        models, aliases, credentials found

Exit codes: 0 success, 1 the run failed, 2 bad input or configuration, 130 interrupted.
Configuration lives in $CHAT_SHELL_HOME (see `chat-shell config path`).
"""


BUILTIN_COMMANDS = frozenset({"chat", "query", "history", "config", "models", "mcp"})


def build_app(invoked: str | None = None) -> typer.Typer:
    """The ``chat-shell`` app with its own commands and those of installed plugins
    (``invoked``: the command about to run, if known, so that only what it needs is loaded)."""
    app = typer.Typer(
        name="chat-shell",
        help=ROOT_HELP,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )

    @app.callback()
    def root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                "-V",
                callback=_version,
                is_eager=True,
                help="Show the version and exit.",
            ),
        ] = False,
    ) -> None:
        pass

    _add_chat(app)
    _add_query(app)
    app.add_typer(_history_app(), name="history")
    app.add_typer(_config_app(), name="config")
    _add_models(app)
    _add_mcp(app)
    register_plugins(app, invoked, BUILTIN_COMMANDS)
    return app


def _add_chat(app: typer.Typer) -> None:
    @app.command(
        epilog="""\b
Examples:
  chat-shell chat
  chat-shell chat --continue            pick up the last session
  chat-shell chat -m openai/gpt-4o --show-thinking
  chat-shell chat --session 3f2a        a session by id (or a unique prefix)
  chat-shell chat --session work        the session "work", new if there is none

\b
In the session: Enter sends, Alt-Enter (or a line ending in \\) adds a line,
arrow keys edit and recall earlier input, Ctrl-C stops the answer being written
(the partial answer is kept, marked cancelled), Ctrl-D or `exit` leaves.
Slash commands: /help /clear /history /model NAME /tools /session /new /retry""",
    )
    def chat(
        model: Model = None,
        system: System = None,
        tool: Tools = None,
        no_tools: NoTools = False,
        session: Session = None,
        resume: Resume = False,
        show_thinking: ShowThinking = False,
        storage: Storage = None,
        wait: Wait = False,
    ) -> int:
        """Talk with the agent: streamed Markdown answers, tool calls shown as they run."""
        from ._chat import chat as run_chat

        return run_chat(
            model=model,
            system=system,
            tools=tool,
            no_tools=no_tools,
            session=session,
            resume=resume,
            show_thinking=show_thinking,
            storage=storage,
            wait=wait,
        )


def _add_query(app: typer.Typer) -> None:
    @app.command(
        epilog="""\b
Examples:
  chat-shell query "What is 123 * 456?"
  git diff | chat-shell query "review this"
  chat-shell query -c "and in French?"          continue the last session
  chat-shell query --json "hi" | jq .content
  chat-shell query --events "hi"                every event as JSON Lines
  chat-shell query --no-tools --no-store -m openai/gpt-4o-mini "hi"

\b
The answer goes to stdout, tool calls and errors to stderr (no colour unless
a terminal). Exit code 1 when the run failed (the model, or a limit), 2 for
bad input or a busy session (a run in progress on it elsewhere; --wait waits
for its end); a tool error the model answered past is not a failure.""",
    )
    def query(
        message: Annotated[
            str | None,
            typer.Argument(
                metavar="[MESSAGE]", help="The message; text piped into stdin is appended to it."
            ),
        ] = None,
        model: Model = None,
        system: System = None,
        tool: Tools = None,
        no_tools: NoTools = False,
        session: Session = None,
        resume: Resume = False,
        no_store: Annotated[
            bool, typer.Option("--no-store", help="Do not keep this turn in the history.")
        ] = False,
        json_output: Annotated[
            bool, typer.Option("--json", help="Print the final output object as JSON.")
        ] = False,
        events: Annotated[
            bool, typer.Option("--events", help="Print every event as JSON Lines.")
        ] = False,
        show_thinking: ShowThinking = False,
        storage: Storage = None,
        yes: Annotated[
            bool,
            typer.Option(
                "--yes",
                "-y",
                "--approve-all",
                help="Approve every tool call that needs approval (MCP tools, by default).",
            ),
        ] = False,
        wait: Wait = False,
    ) -> int:
        """Ask one question and print the answer as it streams."""
        from ._query import query as run_query

        return run_query(
            message,
            model=model,
            system=system,
            tools=tool,
            no_tools=no_tools,
            session=session,
            resume=resume,
            no_store=no_store,
            json_output=json_output,
            events=events,
            show_thinking=show_thinking,
            storage=storage,
            yes=yes,
            wait=wait,
        )


def _history_app() -> typer.Typer:
    history = typer.Typer(
        help="""List, show, search, delete, export and import sessions.

\b
Examples:
  chat-shell history                     the 20 most recent sessions
  chat-shell history -n 100 --json
  chat-shell history show 3f2a           a session, turn by turn
  chat-shell history search "docker compose"
  chat-shell history delete 3f2a --yes
  chat-shell history export > backup.jsonl
  chat-shell history import backup.jsonl""",
        invoke_without_command=True,
        rich_markup_mode=None,
    )

    @history.callback()
    def list_sessions(
        ctx: typer.Context,
        limit: Annotated[
            int,
            typer.Option("--limit", "-n", min=1, metavar="N", help="How many sessions to list."),
        ] = 20,
        json_output: Json = False,
        storage: Storage = None,
    ) -> int:
        """List sessions, newest first."""
        ctx.obj = {"storage": storage}
        if ctx.invoked_subcommand is not None:
            return 0
        from ._history import list_sessions as run

        return run(limit=limit, json_output=json_output, storage=storage)

    def storage_of(ctx: typer.Context, storage: str | None) -> str | None:
        parent = ctx.parent.obj if ctx.parent is not None and ctx.parent.obj else {}
        return storage or parent.get("storage")

    @history.command(epilog="Example: chat-shell history show 3f2a")
    def show(
        ctx: typer.Context,
        session_id: Annotated[str, typer.Argument(metavar="ID", help="Session id or prefix.")],
        json_output: Annotated[
            bool, typer.Option("--json", help="Print the messages as JSON.")
        ] = False,
        storage: Storage = None,
    ) -> int:
        """Replay a session turn by turn, tool calls included."""
        from ._history import show as run

        return run(session_id, json_output=json_output, storage=storage_of(ctx, storage))

    @history.command(epilog='Example: chat-shell history search "error budget"')
    def search(
        ctx: typer.Context,
        text: Annotated[str, typer.Argument(metavar="TEXT", help="Words to find (all of them).")],
        limit: Annotated[
            int, typer.Option("--limit", "-n", min=1, metavar="N", help="How many matches to show.")
        ] = 20,
        json_output: Json = False,
        storage: Storage = None,
    ) -> int:
        """Find messages containing every word of TEXT."""
        from ._history import search as run

        return run(text, limit=limit, json_output=json_output, storage=storage_of(ctx, storage))

    @history.command(epilog="Example: chat-shell history delete 3f2a --yes")
    def delete(
        ctx: typer.Context,
        session_id: Annotated[str, typer.Argument(metavar="ID", help="Session id or prefix.")],
        yes: Yes = False,
        storage: Storage = None,
    ) -> int:
        """Delete a session and its messages (asks first unless --yes)."""
        from ._history import delete as run

        return run(session_id, yes=yes, storage=storage_of(ctx, storage))

    @history.command(
        name="export",
        epilog="""\b
Examples:
  chat-shell history export > all.jsonl
  chat-shell history export 3f2a -o one.jsonl""",
    )
    def export(
        ctx: typer.Context,
        session_ids: Annotated[
            list[str] | None,
            typer.Argument(metavar="[ID]...", help="Sessions to export (default: all)."),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option(
                "--output",
                "-o",
                metavar="FILE",
                help="Write to this file (0600) instead of stdout.",
            ),
        ] = None,
        storage: Storage = None,
    ) -> int:
        """Write sessions as JSON Lines (one session line, then its messages)."""
        from ._history import export as run

        return run(session_ids or None, output=output, storage=storage_of(ctx, storage))

    @history.command(
        name="import",
        epilog="""\b
Examples:
  chat-shell history import backup.jsonl
  chat-shell history export --storage json | chat-shell history import -""",
    )
    def import_(
        ctx: typer.Context,
        path: Annotated[
            str, typer.Argument(metavar="FILE", help="JSON Lines file, or - for stdin.")
        ],
        storage: Storage = None,
    ) -> int:
        """Import sessions from a JSON Lines export; existing sessions are left alone."""
        from ._history import import_ as run

        return run(path, storage=storage_of(ctx, storage))

    return history


def _config_app() -> typer.Typer:
    config = typer.Typer(
        help="""Show and change the configuration (config.toml in the chat-shell home).

\b
Precedence: command-line flags > CHAT_SHELL_* environment > config.toml > defaults.
\b
Examples:
  chat-shell config show
  chat-shell config set model openai/gpt-4o-mini
  chat-shell config set aliases.fast openai/gpt-4o-mini
  chat-shell config set models.openai/gpt-4o.api_key sk-…
  chat-shell config get model
  chat-shell config init""",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @config.command(epilog="Example: chat-shell config show --json")
    def show(json_output: Json = False) -> int:
        """Show every setting, its effective value and where it came from (secrets masked)."""
        from ._config_commands import show as run

        return run(json_output=json_output)

    @config.command(
        epilog="""\b
Examples:
  chat-shell config get model
  chat-shell config get models.openai/gpt-4o.api_base""",
    )
    def get(
        key: Annotated[
            str,
            typer.Argument(metavar="KEY", help="Setting name; nested: aliases.NAME, models.M.KEY."),
        ],
        reveal: Annotated[
            bool, typer.Option("--reveal", help="Print a secret instead of masking it.")
        ] = False,
    ) -> int:
        """Print the effective value of one setting."""
        from ._config_commands import get as run

        return run(key, reveal=reveal)

    @config.command(
        name="set",
        epilog="""\b
Examples:
  chat-shell config set model openai/gpt-4o-mini
  chat-shell config set temperature 0.2
  chat-shell config set fallback_models openai/gpt-4o-mini,anthropic/claude-haiku-4-5
  chat-shell config set aliases.fast openai/gpt-4o-mini
  chat-shell config set models.openai/gpt-4o.api_key sk-…""",
    )
    def set_(
        key: Annotated[
            str,
            typer.Argument(metavar="KEY", help="Setting name; nested: aliases.NAME, models.M.KEY."),
        ],
        value: Annotated[
            str, typer.Argument(metavar="VALUE", help="New value (lists: comma-separated).")
        ],
    ) -> int:
        """Set a value in config.toml (validated first; the file stays 0600)."""
        from ._config_commands import set_value

        return set_value(key, value)

    @config.command(epilog="Example: chat-shell config unset temperature")
    def unset(
        key: Annotated[
            str,
            typer.Argument(metavar="KEY", help="Setting name; nested: aliases.NAME, models.M.KEY."),
        ],
    ) -> int:
        """Remove a value from config.toml (the default applies again)."""
        from ._config_commands import unset as run

        return run(key)

    @config.command(
        epilog="""\b
Examples:
  chat-shell config init
  chat-shell config init ~/work/.chat-shell     then: export CHAT_SHELL_HOME=…""",
    )
    def init(
        path: Annotated[
            str | None,
            typer.Argument(
                metavar="[PATH]", help="Folder to create (default: the chat-shell home)."
            ),
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Replace an existing config.toml.")
        ] = False,
    ) -> int:
        """Create the home folder (0700) with a commented config.toml (0600)."""
        from ._config_commands import init as run

        return run(path, force=force)

    @config.command(epilog='Example: $EDITOR "$(chat-shell config path)"')
    def path() -> int:
        """Print where config.toml is (it may not exist yet)."""
        from ._config_commands import path as run

        return run()

    return config


def _add_models(app: typer.Typer) -> None:
    @app.command(epilog="Example: chat-shell models --json")
    def models(json_output: Json = False) -> int:
        """Show the default model, aliases, fallbacks and which providers have credentials."""
        from ._models import models as run

        return run(json_output=json_output)


def _add_mcp(app: typer.Typer) -> None:
    @app.command(
        epilog="""\b
Examples:
  chat-shell mcp                 start each server, show its state and tools, stop it
  chat-shell mcp --no-start      the configuration only
  chat-shell mcp --json""",
    )
    def mcp(
        json_output: Json = False,
        no_start: Annotated[
            bool, typer.Option("--no-start", help="Show the configuration; start no server.")
        ] = False,
    ) -> int:
        """List the configured MCP servers, their state and their tools (needs chat-shell-mcp)."""
        from ._mcp import mcp as run

        return run(json_output=json_output, start=not no_start)
