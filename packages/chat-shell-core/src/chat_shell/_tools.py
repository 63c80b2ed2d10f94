"""Tools: typed Python functions the model may call, with a JSON schema made from the signature.

``Tool`` wraps one function; ``@tool`` makes one; ``ToolRegistry`` holds them by name and picks
them from an allow-list. Third-party tools (and the built-ins, the same way) come from the
entry-point group ``chat_shell.tools`` and are loaded only when first asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ._errors import ToolError, UserError

if TYPE_CHECKING:
    from ._config import Settings

__all__ = [
    "ApprovalCallback",
    "Tool",
    "ToolFactory",
    "ToolRegistry",
    "Toolset",
    "current_owner",
    "tool",
]

logger = logging.getLogger("chat_shell")

TOOLS_GROUP = "chat_shell.tools"
TOOLSETS_GROUP = "chat_shell.toolsets"
DEFAULT_MAX_OUTPUT_CHARS = 20_000
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
# Bounds on the arguments a model may write for one call. Decoding, validating, storing and
# replaying a value each recurse once per level of nesting, so depth is capped well below
# Python's recursion limit; size is capped so one call cannot flood the history.
MAX_ARGUMENTS_CHARS = 1_000_000
MAX_ARGUMENTS_DEPTH = 64
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before an ``Args:`` section) and per-argument descriptions."""
    description: list[str] = []
    arguments: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        if stripped.lower() in {"args:", "arguments:", "parameters:"}:
            in_args = True
            continue
        if in_args:
            match = re.match(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", stripped)
            if match and not line.startswith((" " * 8, "\t\t")):
                current = match.group(1)
                arguments[current] = match.group(2)
            elif stripped.endswith(":") and not line.startswith(" "):
                in_args = False  # another section (Returns:, Raises:)
            elif current and stripped:
                arguments[current] += " " + stripped
        else:
            description.append(line)
    return "\n".join(description).strip(), arguments


def parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    """The arguments object of a tool call from the JSON text the model wrote, and, if that
    text is unusable (too long, nested too deeply, not JSON, not an object), why."""
    if not raw.strip():
        return {}, None
    if len(raw) > MAX_ARGUMENTS_CHARS:
        return {}, (
            f"arguments are {len(raw)} characters long; at most {MAX_ARGUMENTS_CHARS} are accepted"
        )
    # Checked on the text, before decoding: the decoder itself recurses once per level.
    if raw.count("[") + raw.count("{") > MAX_ARGUMENTS_DEPTH and _nests_deeper(
        raw, MAX_ARGUMENTS_DEPTH
    ):
        return {}, f"arguments are nested more than {MAX_ARGUMENTS_DEPTH} levels deep"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(value, dict):
        return {}, "arguments must be a JSON object"
    return value, None


def _nests_deeper(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` levels deep;
    brackets inside strings do not count."""
    depth = 0
    for bracket in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _serialise(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes of binary data>"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


def cap_output(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [output truncated: {len(text) - limit} more characters]"


async def _in_daemon_thread(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Run a sync tool in its own daemon thread.

    Unlike ``asyncio.to_thread`` a tool that never returns cannot hold up the event loop's
    shutdown or the interpreter's exit: the agent's timeout abandons it and moves on.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result = context.run(function, **kwargs)
        except BaseException as exc:
            outcome: tuple[bool, Any] = (False, exc)
        else:
            outcome = (True, result)
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    name = getattr(function, "__name__", "tool")
    threading.Thread(target=target, name=f"chat-shell-tool-{name}", daemon=True).start()
    return await future


class Tool:
    """A function the model can call.

    ``Tool(fn)`` reads the name from the function, the description and argument descriptions
    from its docstring (Google style ``Args:``), and the JSON schema from its type hints and
    defaults. Sync functions run in a worker thread, async ones on the event loop. Arguments are
    validated before the call; the result is turned into text (JSON for non-strings) and capped
    at ``max_output_chars``. Calling the tool object calls the function directly.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        requires_approval: bool = False,
    ) -> None:
        if isinstance(function, Tool):
            function = function.function
        self.function: Callable[..., Any] = function
        self.name: str = name or str(getattr(function, "__name__", ""))
        if not _TOOL_NAME.fullmatch(self.name):
            raise UserError(f"invalid tool name {self.name!r}: use letters, digits, '_' or '-'")
        if timeout is not None and timeout <= 0:
            raise UserError(f"tool {self.name!r}: timeout must be positive")
        if max_output_chars < 1:
            raise UserError(f"tool {self.name!r}: max_output_chars must be at least 1")
        doc_description, arg_docs = _parse_docstring(function.__doc__ or "")
        self.description = description or doc_description or self.name
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        self.requires_approval = requires_approval
        self.is_async = inspect.iscoroutinefunction(function)
        self.arguments_model = self._arguments_model(function, arg_docs)
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        self.parameters: dict[str, Any] = schema

    def _arguments_model(
        self, function: Callable[..., Any], arg_docs: dict[str, str]
    ) -> type[BaseModel]:
        try:
            hints = get_type_hints(function)
        except Exception as exc:
            raise UserError(f"tool {self.name!r}: cannot read its type hints ({exc})") from exc
        fields: dict[str, Any] = {}
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise UserError(
                    f"tool {self.name!r}: *args/**kwargs cannot be described to a model"
                )
            if parameter.kind is parameter.POSITIONAL_ONLY:
                raise UserError(f"tool {self.name!r}: positional-only parameters cannot be named")
            annotation = hints.get(parameter.name, Any)
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (
                annotation,
                Field(default, description=arg_docs.get(parameter.name)),
            )
        try:
            return create_model(
                f"{self.name}_arguments",
                __config__=ConfigDict(extra="forbid"),
                **fields,
            )
        except Exception as exc:  # pydantic cannot describe one of the types
            raise UserError(f"tool {self.name!r}: unsupported argument type ({exc})") from exc

    def schema(self) -> dict[str, Any]:
        """The tool in the OpenAI ``tools`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The validated keyword arguments; ``ToolError`` describes what does not fit."""
        try:
            model = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()[:10]
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from exc
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def run(self, arguments: dict[str, Any]) -> str:
        """Validate, call, serialise and cap. Exceptions other than ``ToolError`` propagate."""
        kwargs = self.validate(arguments)
        if self.is_async:
            result = await self.function(**kwargs)
        else:
            result = await _in_daemon_thread(self.function, kwargs)
        return cap_output(_serialise(result), self.max_output_chars)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (no validation, no cap)."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    requires_approval: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    requires_approval: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a ``Tool`` of a function: ``@tool`` or ``@tool(name=..., requires_approval=True)``."""

    def decorate(fn: Callable[..., Any]) -> Tool:
        return Tool(
            fn,
            name=name,
            description=description,
            timeout=timeout,
            max_output_chars=max_output_chars,
            requires_approval=requires_approval,
        )

    return decorate if function is None else decorate(function)


ToolFactory: TypeAlias = "Callable[[Settings], Tool]"
"""What an entry point may load instead of a ``Tool``: called with the settings, returns the
tool, raises ``UserError`` (saying which setting is missing) when it cannot be offered."""


class ToolRegistry:
    """Tools by name.

    Entries are tools or factories ``factory(settings) -> Tool`` that run on first use, so an
    installed plugin costs nothing until it is asked for. A factory that raises ``UserError``
    marks its tool as unavailable with these settings (a missing file root, no search backend):
    ``select(None)`` leaves it out, naming it in ``select([...])`` or ``get()`` raises the error.
    """

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings
        self._entries: dict[str, Tool | Callable[[], Tool]] = {}
        for item in tools:
            self.register(item)

    @classmethod
    def default(cls, settings: Settings | None = None) -> ToolRegistry:
        """The built-in tools plus every installed plugin (entry-point group ``chat_shell.tools``).

        ``settings`` configure the tools that need it (file root, search backend, limits);
        ``None`` loads them as usual (``CHAT_SHELL_*`` environment, ``config.toml``, defaults).
        """
        from importlib.metadata import entry_points

        registry = cls(settings=settings)
        for entry_point in entry_points(group=TOOLS_GROUP):
            if entry_point.name in registry._entries:
                logger.warning("tool plugin %r is installed twice; using one", entry_point.name)
                continue
            loader = registry._loader(entry_point.name, entry_point.load)
            registry._entries[entry_point.name] = loader
        return registry

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ._config import load_settings

            self._settings = load_settings()
        return self._settings

    def _loader(self, name: str, load: Callable[[], Any]) -> Callable[[], Tool]:
        def make() -> Tool:
            try:
                loaded = load()
            except Exception as exc:
                raise UserError(f"tool plugin {name!r} failed to load: {exc}") from exc
            made = loaded if isinstance(loaded, Tool) else loaded(self.settings)
            if not isinstance(made, Tool):
                got = type(made).__name__
                raise UserError(f"tool plugin {name!r} did not give a Tool (got {got})")
            if made.name != name:
                raise UserError(f"tool plugin {name!r} gave a tool named {made.name!r}")
            return made

        return make

    def register(
        self, item: Tool | Callable[..., Any], *, name: str | None = None, replace: bool = False
    ) -> Tool:
        """Add a tool (a ``Tool``, or a function to wrap); ``UserError`` if the name is taken."""
        keep = isinstance(item, Tool) and name in (None, item.name)
        made = item if keep and isinstance(item, Tool) else Tool(item, name=name)
        if made.name in self._entries and not replace:
            raise UserError(f"a tool named {made.name!r} is already registered")
        self._entries[made.name] = made
        return made

    def register_factory(self, name: str, factory: ToolFactory, *, replace: bool = False) -> None:
        """Add a tool made on first use by ``factory(settings)``."""
        if not _TOOL_NAME.fullmatch(name):
            raise UserError(f"invalid tool name {name!r}: use letters, digits, '_' or '-'")
        if name in self._entries and not replace:
            raise UserError(f"a tool named {name!r} is already registered")
        self._entries[name] = self._loader(name, lambda: factory)

    def names(self) -> list[str]:
        """Every registered name, sorted (nothing is loaded)."""
        return sorted(self._entries)

    def get(self, name: str) -> Tool:
        """The tool; ``UserError`` for an unknown name (listing the known ones) or one that
        cannot be offered with these settings."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise UserError(f"unknown tool {name!r} (available: {known})")
        if not isinstance(entry, Tool):
            entry = self._entries[name] = entry()
        return entry

    def select(self, allow_list: Iterable[str] | None = None) -> dict[str, Tool]:
        """The tools named in ``allow_list`` (in its order), or every available one for ``None``."""
        if allow_list is None:
            chosen: dict[str, Tool] = {}
            for name in self.names():
                try:
                    chosen[name] = self.get(name)
                except UserError as exc:
                    logger.debug("tool %s left out: %s", name, exc.message)
            return chosen
        names = list(dict.fromkeys(allow_list))
        unknown = [name for name in names if name not in self._entries]
        if unknown:
            known = ", ".join(self.names()) or "none"
            raise UserError(f"unknown tools {', '.join(unknown)} (available: {known})")
        return {name: self.get(name) for name in names}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"


ApprovalCallback = Callable[[str, dict[str, Any]], Awaitable[bool]]

current_owner: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chat_shell_run_owner", default=None
)
"""Whose run a tool call serves (the ``RunPlan.owner``: an API key's id on a server, ``None``
elsewhere). Set for each run's task, so a tool holding per-user state can keep users apart."""


class Toolset:
    """Tools known only once something is running: an MCP server's tools, say.

    ``open()`` makes the tools available (starting what they need), ``tools()`` gives the
    current ones (a toolset may refresh them while open), ``aclose()`` stops whatever ``open()``
    started. ``allow`` (tool names or ``fnmatch`` patterns; ``None``: all) narrows ``tools()``.
    ``warnings`` says what could not be offered and why. Installed toolsets come from
    the entry-point group ``chat_shell.toolsets``: each loads a ``factory(settings)`` that
    returns a ``Toolset``, or ``None`` when the settings configure nothing for it.
    """

    name: str = "toolset"

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.allow: list[str] | None = None

    async def open(self) -> None:
        """Make the tools available; raises ``UserError`` only for bad configuration."""

    def tools(self) -> list[Tool]:
        """The tools offered now."""
        return []

    async def aclose(self) -> None:
        """Stop what ``open()`` started; safe to call more than once."""

    @staticmethod
    def installed(settings: Settings) -> list[Toolset]:
        """The toolsets of every installed plugin that has something configured."""
        from importlib.metadata import entry_points

        found: list[Toolset] = []
        for entry_point in entry_points(group=TOOLSETS_GROUP):
            try:
                factory = entry_point.load()
            except Exception as exc:
                name = entry_point.name
                raise UserError(f"toolset plugin {name!r} failed to load: {exc}") from exc
            made = factory(settings)
            if made is not None:
                found.append(made)
        return found
