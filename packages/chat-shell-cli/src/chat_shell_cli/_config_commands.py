"""``chat-shell config``: show, get, set, unset, init, path.

``config set`` and ``config unset`` rewrite ``config.toml``: the comment block at the top of the
file (what ``config init`` writes) is kept, the values below it are written by tomli-w. Nothing is
written unless the whole resulting configuration is valid.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chat_shell import default_home, load_settings

from ._exit import EXIT_OK, CLIError

if TYPE_CHECKING:
    from chat_shell import Settings

CONFIG_FILE = "config.toml"
_DICT_KEYS = ("aliases", "models", "server")

# Example values for the commented template, where the default (None) says nothing.
_EXAMPLES: dict[str, Any] = {
    "fallback_models": ["anthropic/claude-haiku-4-5"],
    "system_prompt": "You are a concise assistant.",
    "temperature": 0.7,
    "max_tokens": 1024,
    "storage_path": "/path/to/history.db",
    "storage_url": "https://chat.example.com",
    "storage_api_key": "…",
    "tools": ["calculator", "current_time"],
    "file_root": "~/notes",
    "search_backend": "searxng",
    "searxng_url": "http://127.0.0.1:8888",
    "brave_api_key": "…",
    "tavily_api_key": "…",
}


def config_path() -> Path:
    return default_home() / CONFIG_FILE


def path() -> int:
    print(config_path())
    return EXIT_OK


# -- keys ------------------------------------------------------------------------------------------


def _known_keys() -> list[str]:
    from chat_shell import Settings

    return list(Settings.model_fields)


def parse_key(key: str) -> tuple[str, ...]:
    """``model`` → (model,); ``aliases.fast`` → (aliases, fast);
    ``models.openai/gpt-4.1.api_key`` → (models, openai/gpt-4.1, api_key)."""
    from chat_shell import ModelConfig

    if "=" in key:  # `config set brave_api_key=…`: what follows '=' may be a secret, not shown
        name = key.partition("=")[0]
        raise CLIError(
            f"'{name}=…' is not a key (keys have no '='); to set one: "
            f"chat-shell config set {name} VALUE"
        )
    known = _known_keys()
    top, dot, rest = key.partition(".")
    if top not in known:
        raise CLIError(f"unknown key {key!r} (known keys: {', '.join(known)})")
    if not dot:
        return (top,)
    if top == "models":
        model, _, field = rest.rpartition(".")
        fields = list(ModelConfig.model_fields)
        if not model or field not in fields:
            raise CLIError(
                f"{key!r}: name a model and one of its keys, e.g. models.openai/gpt-4o.api_key "
                f"(keys: {', '.join(fields)})"
            )
        return ("models", model, field)
    if top == "aliases" and rest:
        return ("aliases", rest)
    if top == "server" and rest:
        return ("server", *rest.split("."))
    raise CLIError(f"{top!r} has no sub-keys: use `chat-shell config set {top} VALUE`")


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# -- reading and writing the file ------------------------------------------------------------------


def _read(file: Path) -> tuple[str, dict[str, Any]]:
    """The file's leading comment block and its values."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise CLIError(f"cannot read {file}: {reason}") from exc
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CLIError(f"{file} is not valid TOML ({exc}); fix or remove it") from exc
    header = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        header.append(line)
    while header and not header[-1].strip():
        header.pop()
    return "\n".join(header), values


def _validate(values: dict[str, Any], file: Path) -> Settings:
    from chat_shell import Settings
    from pydantic import ValidationError

    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {error['msg']}")
        raise CLIError(f"invalid value, {file} not changed: " + "; ".join(problems)) from exc


def _write_private(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` atomically, 0600, creating the home (0700) if needed."""
    from chat_shell._config import make_private_folder

    make_private_folder(file.parent)
    temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, file)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _save(file: Path, header: str, values: dict[str, Any]) -> None:
    import tomli_w

    body = tomli_w.dumps(values)
    text = (header + "\n\n" if header else "") + body
    _write_private(file, text)


def _env_override(path: tuple[str, ...]) -> str | None:
    variable = f"CHAT_SHELL_{path[0].upper()}"
    return variable if len(path) == 1 and os.environ.get(variable) else None


# -- commands --------------------------------------------------------------------------------------


def _convert(path: tuple[str, ...], raw: str) -> Any:
    """The value to store: lists from commas (or a TOML array), TOML literals where the setting is
    not a string, the text itself otherwise; pydantic then checks and converts it."""
    from chat_shell import Settings

    if path[0] in ("fallback_models", "tools"):
        if raw.strip().startswith("["):
            return _toml_value(raw)
        return [part.strip() for part in raw.split(",") if part.strip()]
    if path[0] == "server":
        return _toml_value(raw)
    if path[0] in ("aliases", "models") and path[-1] in ("api_base", "api_key"):
        return raw
    if path[0] in ("aliases", "models"):
        return raw if path[0] == "aliases" else _toml_value(raw)
    annotation = str(Settings.model_fields[path[0]].annotation)
    return raw if "str" in annotation and "float" not in annotation else _toml_value(raw)


def _toml_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _check_model_names(settings: Settings, path: tuple[str, ...], file: Path) -> None:
    """A model name that cannot be resolved (no known provider, not a well-known bare name,
    not an alias) is refused now rather than failing every later command."""
    from chat_shell import ModelRouter, UserError

    if path[0] == "model":
        names = [settings.model]
    elif path[0] == "fallback_models":
        names = list(settings.fallback_models)
    elif path[0] == "aliases" and len(path) == 2:
        names = [settings.aliases[path[1]]]
    else:
        return
    router = ModelRouter(settings)
    for name in names:
        try:
            router.full_name(name)
        except UserError as exc:
            raise CLIError(f"{exc.message}; {file} not changed") from exc


def set_value(key: str, raw: str) -> int:
    path = parse_key(key)
    file = config_path()
    header, values = _read(file)
    updated = copy.deepcopy(values)
    target = updated
    for part in path[:-1]:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise CLIError(f"{part!r} in {file} is not a table; fix the file first")
        target = child
    target[path[-1]] = _convert(path, raw)
    settings = _validate(updated, file)
    _check_model_names(settings, path, file)
    # store the checked, converted value (e.g. "0.2" → 0.2)
    checked = _lookup(settings.model_dump(mode="json"), path)
    if checked is not None:
        target[path[-1]] = checked
    _save(file, header or _header(), updated)
    shown = _lookup(settings.masked(), path)
    print(f"{key} = {json.dumps(shown, ensure_ascii=False)}  (in {file})")
    variable = _env_override(path)
    if variable:
        print(f"note: {variable} is set and takes precedence over the file", file=sys.stderr)
    return EXIT_OK


def unset(key: str) -> int:
    path = parse_key(key)
    file = config_path()
    header, values = _read(file)
    updated = copy.deepcopy(values)
    parent = _lookup(updated, path[:-1]) if len(path) > 1 else updated
    if not isinstance(parent, dict) or path[-1] not in parent:
        print(f"{key} is not set in {file}")
        return EXIT_OK
    del parent[path[-1]]
    if len(path) > 1 and not parent:  # drop tables left empty
        container = _lookup(updated, path[:-2]) if len(path) > 2 else updated
        if isinstance(container, dict):
            del container[path[-2]]
    _validate(updated, file)
    _save(file, header, updated)
    print(f"removed {key} from {file}")
    return EXIT_OK


def get(key: str, *, reveal: bool) -> int:
    path = parse_key(key)
    settings = load_settings()
    value = _lookup(settings.model_dump(mode="json") if reveal else settings.masked(), path)
    if value is None:
        return EXIT_OK
    print(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return EXIT_OK


def show(*, json_output: bool) -> int:
    settings = load_settings()
    file = config_path()
    values = settings.masked()
    sources = settings.sources
    rows = {key: {"value": values[key], "source": sources.get(key, "default")} for key in values}
    if json_output:
        print(json.dumps({"config_file": str(file), "settings": rows}, indent=2))
        return EXIT_OK
    state = "" if file.exists() else " (does not exist: `chat-shell config init` creates it)"
    print(f"# config file: {file}{state}")
    width = max(len(key) for key in rows)
    for key, row in rows.items():
        value = json.dumps(row["value"], ensure_ascii=False)
        print(f"{key.ljust(width)} = {value}  # {row['source']}")
    return EXIT_OK


def _header() -> str:
    return (
        "# chat-shell configuration (TOML).\n"
        "# Precedence: command-line flags > CHAT_SHELL_* environment > this file > defaults.\n"
        "# `chat-shell config set KEY VALUE` edits the values below this comment block."
    )


def template() -> str:
    """A commented config.toml: every key, its description, its default or an example."""
    import tomli_w
    from chat_shell import Settings

    lines = [_header(), "#"]
    for name, field in Settings.model_fields.items():
        if name in _DICT_KEYS:
            continue
        default = field.get_default(call_default_factory=True)
        example = default if default is not None and default != [] else _EXAMPLES.get(name)
        if field.description:
            lines.append(f"# {name}: {field.description}")
        if example is None:
            lines.append(f"# {name} =")
        else:
            lines += ["# " + line for line in tomli_w.dumps({name: example}).strip().splitlines()]
        lines.append("#")
    lines += [
        "# Short names for models (`chat-shell query -m fast …`):",
        "# [aliases]",
        '# fast = "openai/gpt-4o-mini"',
        "#",
        "# Per-model endpoint, key and options (any OpenAI-compatible server works):",
        '# [models."openai/gpt-4o-mini"]',
        '# api_base = "http://127.0.0.1:8000/v1"',
        '# api_key = "sk-…"',
        "#",
        "# Options of `chat-shell serve` (docs/http.md):",
        "# [server]",
    ]
    return "\n".join(lines) + "\n"


def init(target: str | None, *, force: bool) -> int:
    folder = Path(target).expanduser() if target else default_home()
    file = folder / CONFIG_FILE
    if file.exists() and not force:
        raise CLIError(f"{file} already exists (use --force to replace it)")
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{folder} exists and is not a folder")
    _write_private(file, template())
    print(f"created {file}")
    if target and folder.resolve() != default_home().resolve():
        print(f"use it with: export CHAT_SHELL_HOME={folder}")
    return EXIT_OK
