"""Configuration: explicit argument > ``CHAT_SHELL_*`` environment > ``config.toml`` > defaults."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    ValidationError,
)
from pydantic.fields import FieldInfo

from ._errors import UserError
from ._models.backend import CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, READ_TIMEOUT

__all__ = [
    "ModelConfig",
    "Settings",
    "default_home",
    "load_settings",
    "make_private_folder",
    "mask_secret",
    "with_overrides",
]

CONFIG_FILE = "config.toml"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``CHAT_SHELL_HOME`` if set, else the platform's user config folder for chat-shell."""
    env = os.environ if environ is None else environ
    if env.get("CHAT_SHELL_HOME"):
        return Path(env["CHAT_SHELL_HOME"]).expanduser()
    import platformdirs  # small, but only needed here

    return Path(platformdirs.user_config_dir("chat-shell", appauthor=False))


def make_private_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` and every missing folder above it, each 0700 (``mkdir(parents=True)``
    would leave the parents to the umask, typically 0755); folders that exist are left as
    they are. Raises ``OSError`` (``NotADirectoryError`` if ``folder`` is not a folder)."""
    path = Path(folder).expanduser()
    missing: list[Path] = []
    for level in (path, *path.parents):
        if level.exists():
            break
        missing.append(level)
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            level.mkdir(mode=0o700)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    return path


def mask_secret(value: str | None) -> str | None:
    """Show that a secret is set without showing it: ``sk-…wxyz`` keeps the last 4 characters."""
    if not value:
        return value
    return "****" if len(value) < 12 else f"{value[:3]}…{value[-4:]}"


# -- which settings are secrets, and masking them: the one place ---------------------------------
#
# A field of a settings model is a secret when it is marked ``json_schema_extra={"secret": True}``
# or typed ``SecretStr``/``SecretBytes``. Tables of free-form options (``[server]``, whose model
# lives in another distribution) say it with their names: ``api_keys``, ``admin_token`` …

# Not "tokens": here that word counts what a model reads and writes (max_tokens).
_SECRET_WORDS = frozenset(
    {"key", "keys", "secret", "secrets", "token", "password", "passwords", "passwd"}
    | {"passphrase", "credential", "credentials", "authorization", "cookie"}
)


def is_secret_name(name: str) -> bool:
    """Whether an option of a free-form table is a secret, by its name."""
    return not _SECRET_WORDS.isdisjoint(re.split(r"[^a-z0-9]+", name.lower()))


def _is_secret_field(field: FieldInfo) -> bool:
    """Whether a field of a settings model holds a secret."""
    extra = field.json_schema_extra
    return (isinstance(extra, dict) and extra.get("secret") is True) or _names_secret_type(
        field.annotation
    )


def _holds_url_credentials(field: FieldInfo) -> bool:
    """Whether a field is a URL that may carry a password (``secret: "url"``)."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") == "url"


_URL_PASSWORD = re.compile(r"^(?P<head>[a-z][a-z0-9+.-]*://[^/@:?#]*):[^/@?#]*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)


def mask_url_password(value: str | None) -> str | None:
    """A URL with its password (``user:password@`` or ``?password=``) shown as ``****``."""
    if not value:
        return value
    value = _URL_PASSWORD.sub(r"\g<head>:****@", value)
    return _QUERY_PASSWORD.sub(r"\g<head>****", value)


def _names_secret_type(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_names_secret_type(argument) for argument in get_args(annotation))


def _hide(value: Any) -> Any:
    """A secret value masked, whatever its shape."""
    if value is None:
        return None
    if isinstance(value, str):
        return mask_secret(value)
    if isinstance(value, list | tuple):
        return [_hide(item) for item in value]
    if isinstance(value, dict):
        return {key: _hide(item) for key, item in value.items()}
    return "****"


def _branches(annotation: Any) -> Iterator[Any]:
    """The types a value of ``annotation`` may have (the members of a union)."""
    if get_origin(annotation) in (Union, types.UnionType):
        for argument in get_args(annotation):
            yield from _branches(argument)
    else:
        yield annotation


def mask_secrets(value: Any, annotation: Any = Any) -> Any:
    """``value`` (of type ``annotation``, e.g. a ``model_dump`` of a settings model) with every
    secret in it masked; everything else is returned as it is."""
    if isinstance(value, list):
        for branch in _branches(annotation):
            if get_origin(branch) is list:
                return [mask_secrets(item, get_args(branch)[0]) for item in value]
        return [mask_secrets(item) for item in value]
    if not isinstance(value, dict):
        return value
    for branch in _branches(annotation):
        if isinstance(branch, type) and issubclass(branch, BaseModel):
            fields = branch.model_fields
            return {
                key: (
                    _hide(item)
                    if key in fields and _is_secret_field(fields[key])
                    else mask_url_password(item)
                    if key in fields and _holds_url_credentials(fields[key])
                    else mask_secrets(item, fields[key].annotation if key in fields else Any)
                )
                for key, item in value.items()
            }
        if get_origin(branch) is dict and get_args(branch)[1] is not Any:
            item_type = get_args(branch)[1]  # a mapping of names (aliases, models)
            return {key: mask_secrets(item, item_type) for key, item in value.items()}
    # a table of free-form options
    return {
        key: _hide(item) if is_secret_name(str(key)) else mask_secrets(item)
        for key, item in value.items()
    }


class ModelConfig(BaseModel):
    """Per-model settings in ``[models."provider/name"]``."""

    model_config = ConfigDict(extra="forbid")

    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False, json_schema_extra={"secret": True})
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0, description="seconds per request")
    connect_timeout: float | None = Field(default=None, gt=0, description="seconds to connect")
    first_byte_timeout: float | None = Field(
        default=None, gt=0, description="seconds from the request to the answer's first byte"
    )
    read_timeout: float | None = Field(
        default=None, gt=0, description="longest silence within an answer, in seconds"
    )
    ca_bundle: str | None = Field(
        default=None, description="PEM file or folder of CAs trusted instead of the system's"
    )
    context_window: int | None = Field(
        default=None,
        gt=0,
        description="tokens of input the model takes (default: litellm's table, if it knows)",
    )


class Settings(BaseModel):
    """Everything chat-shell can be configured with; every field is a key of ``config.toml``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(default="openai/gpt-4o-mini", description="default model")
    fallback_models: list[str] = Field(
        default_factory=list, description="tried in order if the model fails before answering"
    )
    aliases: dict[str, str] = Field(default_factory=dict, description="short names for models")
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    system_prompt: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    context: Literal["drop", "summarize", "off"] = Field(
        default="drop",
        description="turns that do not fit the model's context window: drop (the oldest), "
        "summarize (replace them by a summary the model writes), off (send everything)",
    )
    max_iterations: int = Field(default=10, ge=1, le=100, description="model calls per run")
    tool_timeout: float = Field(default=30.0, gt=0, description="seconds per tool call")
    run_timeout: float | None = Field(default=600.0, gt=0, description="seconds per run")
    retries: int = Field(default=2, ge=0, le=10, description="retries before the first token")
    connect_timeout: float = Field(
        default=CONNECT_TIMEOUT, gt=0, description="seconds to connect to a model's endpoint"
    )
    first_byte_timeout: float = Field(
        default=FIRST_BYTE_TIMEOUT,
        gt=0,
        description="seconds from a model request to the first byte of its answer",
    )
    read_timeout: float = Field(
        default=READ_TIMEOUT, gt=0, description="longest silence within a model's answer, seconds"
    )
    storage: str = Field(default="sqlite", description="history backend of the CLI and server")
    storage_path: str | None = Field(
        default=None, description="file or folder of the sqlite/json backends (default: in home)"
    )
    storage_url: str | None = Field(
        default=None,
        description=(
            "URL of the remote backend's chat-shell server, or the postgres backend's database"
            " (postgresql://user:password@host/db); its password is masked when shown"
        ),
        json_schema_extra={"secret": "url"},
    )
    storage_api_key: str | None = Field(
        default=None, repr=False, json_schema_extra={"secret": True}
    )
    run_store: str | None = Field(
        default=None,
        description="where runs live (memory, sqlite …); None: the history backend's own "
        "run store when it has one, else memory",
    )
    run_lease_seconds: float = Field(
        default=20.0,
        ge=2,
        le=3600,
        description="a run whose process stops renewing it for this long is marked interrupted",
    )
    server: dict[str, Any] = Field(
        default_factory=dict, description="options of `chat-shell serve` (docs/http.md)"
    )
    tools: list[str] | None = Field(default=None, description="tools enabled (None: all)")
    mcp_servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="MCP servers whose tools the agent may use"
    )
    mcp_config: str | None = Field(
        default=None, description="an mcpServers JSON file of more MCP servers (docs/tools.md)"
    )
    # Built-in tools (docs/tools.md). Secrets carry json_schema_extra={"secret": True}.
    file_root: str | None = Field(
        default=None, description="folder read_file/list_files may read (None: file tools off)"
    )
    file_max_bytes: int = Field(default=65_536, gt=0, description="bytes per read_file call")
    search_backend: Literal["searxng", "brave", "tavily"] | None = Field(
        default=None, description="web_search backend (None: web_search off)"
    )
    searxng_url: str | None = Field(default=None, description="base URL of a SearXNG instance")
    brave_api_key: str | None = Field(default=None, repr=False, json_schema_extra={"secret": True})
    tavily_api_key: str | None = Field(default=None, repr=False, json_schema_extra={"secret": True})
    search_rate_per_minute: int = Field(
        default=10, ge=1, description="web_search queries per minute per process"
    )
    fetch_max_bytes: int = Field(default=2_000_000, gt=0, description="bytes fetch_url reads")
    fetch_timeout: float = Field(default=15.0, gt=0, description="seconds per fetch_url call")

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def sources(self) -> dict[str, str]:
        """Where each key's value came from: default, config file, environment or argument."""
        return {name: self._sources.get(name, "default") for name in type(self).model_fields}

    def masked(self) -> dict[str, Any]:
        """Every setting as JSON values (what ``chat-shell config show`` prints), with every
        secret masked: ``{"brave_api_key": "BSA…wxyz", "server": {"api_keys": ["****"]} …}``."""
        masked: dict[str, Any] = mask_secrets(self.model_dump(mode="json"), type(self))
        return masked

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Secret fields are left out (repr=False); free-form tables may hold secrets too.
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            if name in fields and _holds_url_credentials(fields[name]):
                yield name, mask_url_password(value)
                continue
            annotation = fields[name].annotation if name in fields else Any
            yield name, mask_secrets(value, annotation)


# CHAT_SHELL_<KEY> for every scalar or list key; lists are comma-separated.
_ENV_KEYS = (
    "model",
    "fallback_models",
    "system_prompt",
    "temperature",
    "max_tokens",
    "context",
    "max_iterations",
    "tool_timeout",
    "run_timeout",
    "retries",
    "connect_timeout",
    "first_byte_timeout",
    "read_timeout",
    "storage",
    "storage_path",
    "storage_url",
    "storage_api_key",
    "run_store",
    "run_lease_seconds",
    "tools",
    "mcp_config",
    "file_root",
    "file_max_bytes",
    "search_backend",
    "searxng_url",
    "brave_api_key",
    "tavily_api_key",
    "search_rate_per_minute",
    "fetch_max_bytes",
    "fetch_timeout",
)
_LIST_KEYS = {"fallback_models", "tools"}


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML ({exc}); fix or remove it") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib decodes the whole file first
        raise UserError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start}); "
            "save it as UTF-8, or fix or remove it"
        ) from exc
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc


def _explain(exc: ValidationError, origin: str) -> UserError:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            problems.append(f"unknown key {key!r} (known keys: {known})")
        else:
            problems.append(f"{key}: {error['msg']}")
    return UserError(f"bad configuration in {origin}: " + "; ".join(problems))


def load_settings(
    home: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    read_file: bool = True,
    **overrides: Any,
) -> Settings:
    """Build the effective settings; ``overrides`` whose value is ``None`` are ignored.

    Raises ``UserError`` naming the file or variable for a broken ``config.toml``, an unknown
    key, or a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    home_path = Path(home) if home is not None else default_home(env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    config_path = home_path / CONFIG_FILE
    if read_file:
        file_values = _read_config_file(config_path)
        try:
            Settings.model_validate(file_values)
        except ValidationError as exc:
            raise _explain(exc, str(config_path)) from exc
        values.update(file_values)
        sources.update(dict.fromkeys(file_values, f"file {config_path}"))

    for key in _ENV_KEYS:
        variable = f"CHAT_SHELL_{key.upper()}"
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        values[key] = (
            [part.strip() for part in raw.split(",") if part.strip()]
            if (key in _LIST_KEYS)
            else raw
        )
        sources[key] = f"env {variable}"

    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            sources[key] = "argument"

    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        origin = ", ".join(sorted({sources.get(str(e["loc"][0]), "?") for e in exc.errors()}))
        raise _explain(exc, origin) from exc
    settings._sources = sources
    return settings


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with ``overrides`` put over them as explicit arguments (``None``: not given,
    the settings' value stays): a copy, the given settings are left as they are. Raises
    ``UserError`` for a value of the wrong type."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return settings
    try:
        updated = type(settings).model_validate({**settings.model_dump(), **given})
    except ValidationError as exc:
        raise _explain(exc, "argument") from exc
    updated._sources = {**settings._sources, **dict.fromkeys(given, "argument")}
    return updated
