"""MCP servers as configured: ``[mcp_servers.NAME]`` tables and ``mcpServers`` JSON files."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chat_shell import Settings, UserError, default_home
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["McpServerConfig", "expand_variables", "load_servers"]

_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class McpServerConfig(BaseModel):
    """One MCP server: started as a command (stdio) or reached at a URL (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="added to the environment")
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    tools: list[str] | None = Field(
        default=None, description="patterns of the server's tools to offer (None: all)"
    )
    exclude_tools: list[str] = Field(default_factory=list, description="patterns to leave out")
    startup_timeout: float = Field(default=30.0, gt=0, description="seconds to start and list")
    call_timeout: float = Field(default=60.0, gt=0, description="seconds per tool call")
    max_output_chars: int = Field(default=20_000, ge=1)
    requires_approval: bool = True
    tool_approval: dict[str, bool] = Field(
        default_factory=dict,
        description="per tool (name or pattern): whether a call needs approval",
    )
    shared: bool | None = Field(
        default=None,
        description="one connection for every API key of a server (default: no for stdio)",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (stdio) or `url` (streamable HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("`url` must be an http:// or https:// address")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    @property
    def is_shared(self) -> bool:
        return self.shared if self.shared is not None else self.transport == "http"

    def offers(self, tool_name: str) -> bool:
        """Whether the allow/deny patterns let the server's tool ``tool_name`` through."""
        if self.tools is not None and not any(
            fnmatch.fnmatchcase(tool_name, p) for p in self.tools
        ):
            return False
        return not any(fnmatch.fnmatchcase(tool_name, p) for p in self.exclude_tools)

    def needs_approval(self, tool_name: str) -> bool:
        """``tool_approval`` (an exact name first, then the first matching pattern), else the
        server's ``requires_approval``."""
        if tool_name in self.tool_approval:
            return self.tool_approval[tool_name]
        for pattern, needed in self.tool_approval.items():
            if fnmatch.fnmatchcase(tool_name, pattern):
                return needed
        return self.requires_approval


def expand_variables(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` replaced in every string of ``value``; a variable
    that is not set and has no default is a ``UserError`` naming it."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = environ.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    raise UserError(f"{where}: the environment variable {name} is not set")
                return default
            return found

        return _VARIABLE.sub(replace, value)
    if isinstance(value, list):
        return [expand_variables(item, environ, where) for item in value]
    if isinstance(value, dict):
        return {key: expand_variables(item, environ, where) for key, item in value.items()}
    return value


def _from_json_entry(entry: Any, where: str) -> dict[str, Any]:
    """An ``mcpServers`` entry in our field names (the common format's ``type`` is implied by
    ``command``/``url``; ``disabled`` is ``enabled`` inverted)."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: each server must be a JSON object")
    values = dict(entry)
    kind = values.pop("type", None)
    if kind not in (None, "stdio", "http", "streamable-http", "streamableHttp"):
        raise UserError(f"{where}: transport {kind!r} is not supported (stdio or http)")
    if "disabled" in values:
        values["enabled"] = not values.pop("disabled")
    return values


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"mcp_config: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"mcp_config: cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"mcp_config: {path} is not valid JSON ({exc})") from exc
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise UserError(f'mcp_config: {path} has no "mcpServers" object')
    return servers


def load_servers(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> dict[str, McpServerConfig]:
    """Every configured MCP server by name: ``[mcp_servers.NAME]`` tables, then the servers of
    the ``mcp_config`` JSON file (a relative path is relative to the chat-shell home). A name
    given in both is a ``UserError``; so is any bad entry."""
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[str, Any]] = {
        name: (f"[mcp_servers.{name}]", value) for name, value in settings.mcp_servers.items()
    }
    if settings.mcp_config:
        path = Path(settings.mcp_config).expanduser()
        if not path.is_absolute():
            path = (Path(home) if home is not None else default_home(env)) / path
        for name, entry in _read_json(path).items():
            where = f"{path}: mcpServers.{name}"
            if name in raw:
                raise UserError(f"{where}: a server named {name!r} is configured twice")
            raw[name] = (where, _from_json_entry(entry, where))
    servers: dict[str, McpServerConfig] = {}
    for name, (where, values) in raw.items():
        if not _SERVER_NAME.fullmatch(name):
            raise UserError(
                f"{where}: the server name must be 1-32 letters, digits, '_' or '-' "
                "(it starts each tool's name)"
            )
        if not isinstance(values, dict):
            raise UserError(f"{where}: must be a table")
        try:
            servers[name] = McpServerConfig.model_validate(expand_variables(values, env, where))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'server'}: {e['msg']}"
                for e in exc.errors()
            )
            raise UserError(f"{where}: {problems}") from exc
    return servers
