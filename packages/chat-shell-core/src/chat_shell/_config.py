"""Configuration: explicit argument > ``CHAT_SHELL_*`` environment > ``config.toml`` > defaults."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ._errors import UserError

__all__ = ["ModelConfig", "Settings", "default_home", "load_settings", "mask_secret"]

CONFIG_FILE = "config.toml"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``CHAT_SHELL_HOME`` if set, else the platform's user config folder for chat-shell."""
    env = os.environ if environ is None else environ
    if env.get("CHAT_SHELL_HOME"):
        return Path(env["CHAT_SHELL_HOME"]).expanduser()
    import platformdirs  # small, but only needed here

    return Path(platformdirs.user_config_dir("chat-shell", appauthor=False))


def mask_secret(value: str | None) -> str | None:
    """Show that a secret is set without showing it: ``sk-…wxyz`` keeps the last 4 characters."""
    if not value:
        return value
    return "****" if len(value) < 12 else f"{value[:3]}…{value[-4:]}"


class ModelConfig(BaseModel):
    """Per-model settings in ``[models."provider/name"]``."""

    model_config = ConfigDict(extra="forbid")

    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0, description="seconds per request")


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
    max_iterations: int = Field(default=10, ge=1, le=100, description="model calls per run")
    tool_timeout: float = Field(default=30.0, gt=0, description="seconds per tool call")
    run_timeout: float | None = Field(default=600.0, gt=0, description="seconds per run")
    retries: int = Field(default=2, ge=0, le=10, description="retries before the first token")
    storage: str = Field(default="sqlite", description="history backend of the CLI and server")
    storage_path: str | None = Field(
        default=None, description="file or folder of the sqlite/json backends (default: in home)"
    )
    storage_url: str | None = Field(
        default=None, description="base URL of a chat-shell server, for the remote backend"
    )
    storage_api_key: str | None = Field(
        default=None, repr=False, json_schema_extra={"secret": True}
    )
    server: dict[str, Any] = Field(
        default_factory=dict, description="options of `chat-shell serve` (docs/http.md)"
    )
    tools: list[str] | None = Field(default=None, description="tools enabled (None: all)")
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


# CHAT_SHELL_<KEY> for every scalar or list key; lists are comma-separated.
_ENV_KEYS = (
    "model",
    "fallback_models",
    "system_prompt",
    "temperature",
    "max_tokens",
    "max_iterations",
    "tool_timeout",
    "run_timeout",
    "retries",
    "storage",
    "storage_path",
    "storage_url",
    "storage_api_key",
    "tools",
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
