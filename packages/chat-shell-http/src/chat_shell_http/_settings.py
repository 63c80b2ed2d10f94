"""Server options: the ``[server]`` table of ``config.toml``, validated."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any

from chat_shell import Settings, UserError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

__all__ = ["ServerSettings", "hash_api_key", "is_loopback"]

_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def hash_api_key(key: str) -> str:
    """The form in which the server keeps an API key: ``sha256:<hex>``.

    API keys are long random strings, so one round of SHA-256 cannot be reversed in practice;
    the plain key is never kept after start-up.
    """
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine
    only: ``localhost``, 127.0.0.0/8, ``::1`` (also as ``::ffff:127.0.0.1``)."""
    name = host.strip().lower().removesuffix(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class ServerSettings(BaseModel):
    """Options of ``chat-shell serve``; every field is a key of ``[server]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address to bind")
    port: int = Field(default=8000, ge=0, le=65535, description="port to bind")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="accepted API keys (Bearer); hashed at start-up, never kept in plain text",
    )
    api_key_hashes: list[str] = Field(
        default_factory=list, description="accepted API keys as 'sha256:<hex>' digests"
    )
    insecure_no_auth: bool = Field(
        default=False, description="allow binding a non-loopback address without API keys"
    )
    allowed_models: list[str] | None = Field(
        default=None,
        description="models clients may ask for (fnmatch patterns such as 'openai/*'); "
        "None: the configured model, fallbacks, [models] entries and aliases",
    )
    tools: list[str] | None = Field(
        default=None, description="tools the server's agent may use (None: the `tools` setting)"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS (empty: CORS off)"
    )
    max_request_bytes: int = Field(
        default=1_048_576, gt=0, description="largest request body accepted (413 beyond)"
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="requests per minute per API key (0: no limit)"
    )
    rate_limit_loopback: bool = Field(
        default=False,
        description="also rate-limit the anonymous caller on this machine (a server without "
        "API keys, called from a loopback address); by default it is not limited",
    )
    run_retention_seconds: float = Field(
        default=3600.0, ge=0, description="how long a finished run stays queryable"
    )
    max_retained_runs: int = Field(
        default=10_000, gt=0, description="finished runs kept at most (oldest dropped first)"
    )
    max_retained_run_bytes: int = Field(
        default=268_435_456,
        gt=0,
        description="bytes of events the finished runs kept may take at most (oldest dropped "
        "first; default 256 MiB)",
    )
    run_purge_seconds: float = Field(
        default=60.0, gt=0, description="how often finished runs past retention are purged"
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="on SIGTERM, how long runs in progress may go on before they are "
        "cancelled (their partial answers stored)",
    )
    approval_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="how long a tool call that needs approval waits for an answer "
        "(POST /v1/response/{run_id}/approvals) before it counts as not approved",
    )
    max_active_runs: int = Field(
        default=1000, gt=0, description="runs executing at once (503 beyond)"
    )
    keepalive_seconds: float = Field(
        default=15.0, gt=0, description="SSE keep-alive comment interval"
    )
    client_buffer_events: int = Field(
        default=1000,
        gt=0,
        description="events a stream may fall behind its run before it is cut (resume then)",
    )
    send_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a stream whose client takes no data this long is cut"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names accepted ('api.example.com', '*.example.com', '*': any); "
        "empty: without API keys only loopback names (localhost, 127.0.0.1, [::1]), with keys any",
    )
    head_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a request's line and headers must arrive within this, counted from the "
        "connection's start or the end of the previous answer (else the connection is closed)",
    )
    max_head_bytes: int = Field(
        default=32_768, ge=1024, description="largest request line and headers (431 beyond)"
    )
    max_connections: int | None = Field(
        default=None,
        gt=0,
        description="open connections at most (503 beyond); None: half the process's "
        "file-descriptor limit",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="server processes sharing the port (more than 1 needs history and runs "
        "several processes share: storage postgres)",
    )
    log_level: str = Field(default="info", description="uvicorn log level")
    access_log: bool = Field(default=True, description="log one line per request")

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        # "[::1]" is how a URL writes an IPv6 address; a socket is bound to "::1".
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            return value[1:-1]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or any(c in item for c in "/ \t"):
                raise ValueError(f"allowed_hosts entries are host names, not {item!r}")
        return value

    @field_validator("api_key_hashes")
    @classmethod
    def _check_hashes(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _HASH.fullmatch(item):
                raise ValueError("api_key_hashes entries look like 'sha256:<64 hex digits>'")
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for item in value:
            if len(item.get_secret_value()) < 16:
                raise ValueError("API keys must be at least 16 characters")
        return value

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ServerSettings:
        """``settings.server`` + ``CHAT_SHELL_API_KEYS`` + explicit overrides (not ``None``)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = dict(settings.server)
        if env.get("CHAT_SHELL_API_KEYS"):
            keys = [k.strip() for k in env["CHAT_SHELL_API_KEYS"].split(",") if k.strip()]
            values["api_keys"] = [*values.get("api_keys", []), *keys]
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "api_keys":
                values["api_keys"] = [*values.get("api_keys", []), *value]
            else:
                values[key] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'server'}: {e['msg']}"
                for e in exc.errors()
            )
            raise UserError(f"bad [server] configuration: {problems}") from exc

    @property
    def key_hashes(self) -> list[str]:
        """Every accepted key, hashed."""
        hashes = [hash_api_key(key.get_secret_value()) for key in self.api_keys]
        return list(dict.fromkeys([*hashes, *self.api_key_hashes]))

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.api_key_hashes)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def check_bind(self) -> None:
        """Refuse to listen beyond this machine without API keys (unless told to)."""
        if is_loopback(self.host) or self.auth_enabled or self.insecure_no_auth:
            return
        raise UserError(
            f"refusing to bind {self.host} without API keys: anyone who can reach it could use "
            "your models. Add --api-key KEY (or [server] api_keys / CHAT_SHELL_API_KEYS), bind "
            "127.0.0.1, or pass --insecure-no-auth if something in front of it authenticates"
        )
